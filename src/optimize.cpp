// torch.jit.optimize_for_inference / torch.jit.freeze, which tch does not expose. The result
// is handed to tch as the same `torch::jit::Module*` its own loader creates (tch deletes it).
// An optimized module cannot go through save/load (its MKLDNN constants do not serialise),
// hence the pointer. Exceptions never cross into Rust: they become an error message.
#include <torch/script.h>

#include <cstring>
#include <string>

namespace {
void set_error(char *err, size_t err_len, const std::string &msg) {
    if (err && err_len > 0) {
        std::strncpy(err, msg.c_str(), err_len - 1);
        err[err_len - 1] = '\0';
    }
}
}  // namespace

// device: -1 = CPU (optimize_for_inference: freeze + fusions + MKLDNN), n >= 0 = cuda:n
// (freeze only: MKLDNN layouts are CPU-only). The floating-point weights are converted to fp16
// (`half`) or fp32 before freezing: freezing inlines them as graph constants, which a later
// `to()` cannot reach. (fp32 also brings models saved in fp16 or fp64 to the input's type.)
// Returns a new module, or NULL with `err` set.
extern "C" void *ji_optimize_torchscript(const char *path, int device, int half, char *err, size_t err_len) {
    try {
        c10::Device dev = device < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, device);
        torch::jit::Module m = torch::jit::load(path, dev);
        m.eval();
        m.to(dev, half ? at::kHalf : at::kFloat);
        torch::jit::Module opt = device < 0 ? torch::jit::optimize_for_inference(m) : torch::jit::freeze(m);
        return new torch::jit::Module(opt);
    } catch (const std::exception &e) {
        set_error(err, err_len, e.what());
    } catch (...) {
        set_error(err, err_len, "unknown C++ exception");
    }
    return nullptr;
}
