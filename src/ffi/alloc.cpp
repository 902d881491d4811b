// The C++ allocations ji_calc_image_asyn hands to its callback. The platform's 4.x test program
// frees what it receives with `delete output` and `delete [] (unsigned char*)outPic.pData`, so
// the JiData must come from C++ `new` and the pixels from `new unsigned char[]`; malloc or
// Rust's allocator would be a mismatched free. JiData is the type of the shipped header, so its
// layout is the one the caller compiles against. No exception crosses into Rust: nothrow
// forms, NULL on failure; callbacks are called through a trampoline that catches what they
// throw.
#include <cstdio>
#include <exception>
#include <new>

#include "ji.h"

extern "C" {

JiData *ji_rs_jidata_new(void) { return new (std::nothrow) JiData(); }

void ji_rs_jidata_delete(JiData *p) { delete p; }

unsigned char *ji_rs_bytes_new(size_t n) { return new (std::nothrow) unsigned char[n]; }

void ji_rs_bytes_delete(unsigned char *p) { delete[] p; }

// Calls an asynchronous callback. A C++ exception that escapes it would unwind into Rust frames
// (undefined behaviour, an abort in practice): it is caught here and reported on stderr, and
// the library goes on with the next request. Returns 0, or -1 when one was caught.
int ji_rs_call_callback(JiCallBack cb, JiData *data, void *user_data) {
    try {
        cb(data, user_data);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "libji: a ji_calc_image_asyn callback threw a C++ exception (%s); "
                             "caught, the next requests go on\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "libji: a ji_calc_image_asyn callback threw a C++ exception; "
                             "caught, the next requests go on\n");
    }
    return -1;
}

}  // extern "C"
