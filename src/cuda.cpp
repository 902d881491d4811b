// The CUDA hooks libtorch uses, for src/cuda.rs: whether libtorch_cuda.so's real hooks are the
// ones in force (they are cached on first use, so a CUDA query before libtorch_cuda.so was
// loaded would have fixed the CPU-only stub for the whole process).
#include <ATen/detail/CUDAHooksInterface.h>

// CUDART_VERSION libtorch_cuda.so was built with (e.g. 13000), or -1 when the hooks in force
// are the CPU-only stub. Never throws; needs no GPU or driver.
extern "C" long ji_cuda_runtime_version() {
    try {
        return at::detail::getCUDAHooks().versionCUDART();
    } catch (...) {
        return -1;
    }
}
