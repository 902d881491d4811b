// The C++ allocations ji_calc_image_asyn hands to its callback. The platform's 4.x test program
// frees what it receives with `delete output` and `delete [] (unsigned char*)outPic.pData`, so
// the JiData must come from C++ `new` and the pixels from `new unsigned char[]`; malloc or
// Rust's allocator would be a mismatched free. JiData is the type of the shipped header, so its
// layout is the one the caller compiles against. No exception crosses into Rust: nothrow
// forms, NULL on failure.
#include <new>

#include "ji.h"

extern "C" {

JiData *ji_rs_jidata_new(void) { return new (std::nothrow) JiData(); }

void ji_rs_jidata_delete(JiData *p) { delete p; }

unsigned char *ji_rs_bytes_new(size_t n) { return new (std::nothrow) unsigned char[n]; }

void ji_rs_bytes_delete(unsigned char *p) { delete[] p; }

}  // extern "C"
