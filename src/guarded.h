// How the C++ shims (src/jit.cpp, src/optimize.cpp) hand failures to Rust: no exception crosses
// the boundary; `guarded` runs a function and turns what it throws into a message in the
// caller's buffer (at most err_len bytes, NUL-terminated) and a NULL result.
#pragma once

#include <cstring>
#include <exception>
#include <string>

namespace ji_rs {
inline void set_error(char *err, size_t err_len, const std::string &msg) {
    if (err && err_len > 0) {
        std::strncpy(err, msg.c_str(), err_len - 1);
        err[err_len - 1] = '\0';
    }
}

template <typename F>
void *guarded(char *err, size_t err_len, F f) {
    try {
        return f();
    } catch (const std::exception &e) {
        set_error(err, err_len, e.what());
    } catch (...) {
        set_error(err, err_len, "unknown C++ exception");
    }
    return nullptr;
}
}  // namespace ji_rs
