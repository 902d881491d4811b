// The CUDA hooks libtorch uses, for src/cuda.rs: whether libtorch_cuda.so's real hooks are the
// ones in force (they are cached on first use, so a CUDA query before libtorch_cuda.so was
// loaded would have fixed the CPU-only stub for the whole process), and the CUDA caching
// allocator through c10's device-generic allocator interface. Nothing here links CUDA: the
// allocator is the one libtorch_cuda.so registered with c10 when src/cuda.rs loaded it.
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/CachingDeviceAllocator.h>

#include <cstdint>

// CUDART_VERSION libtorch_cuda.so was built with (e.g. 13000), or -1 when the hooks in force
// are the CPU-only stub. Never throws; needs no GPU or driver.
extern "C" long ji_cuda_runtime_version() {
    try {
        return at::detail::getCUDAHooks().versionCUDART();
    } catch (...) {
        return -1;
    }
}

// Returns the CUDA caching allocator's free blocks to the driver (torch.cuda.empty_cache()).
// 0, or -1 when there is no CUDA allocator (the backend is not loaded). Only called once a
// CUDA model existed, i.e. after src/cuda.rs loaded the backend.
extern "C" int ji_cuda_empty_cache() {
    try {
        c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
        return 0;
    } catch (...) {
        return -1;
    }
}

// GPU memory of device `index`: out = {free and total bytes on the device (the driver's view,
// every process and context included), bytes the caching allocator holds for tensors now, and
// bytes it has reserved from the driver (held tensors and cached free blocks)}. 0, or -1.
extern "C" int ji_cuda_memory(int index, int64_t *out) {
    try {
        auto *a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
        auto device = static_cast<c10::DeviceIndex>(index);
        auto info = a->getMemoryInfo(device);
        auto stats = a->getDeviceStats(device);
        const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
        out[0] = static_cast<int64_t>(info.first);
        out[1] = static_cast<int64_t>(info.second);
        out[2] = stats.allocated_bytes[all].current;
        out[3] = stats.reserved_bytes[all].current;
        return 0;
    } catch (...) {
        return -1;
    }
}
