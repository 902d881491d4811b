// A TorchScript module behind our own handle (src/jit.rs): load, eval, convert, clone, forward
// and free, so that nothing in the crate depends on the private layout of tch's CModule. Every
// module-returning function gives a new `torch::jit::Module*` (freed by ji_module_free) or NULL
// with `err` set; tensors cross as tch's own `at::Tensor*` (tch's `Tensor::as_ptr` /
// `Tensor::from_ptr`, which deletes it). Exceptions never cross into Rust: they become an error
// message.
#include <torch/script.h>

#include "guarded.h"

#include <cstring>
#include <mutex>
#include <string>

namespace {
using ji_rs::guarded;

c10::Device device_of(int device) {
    return device < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, device);
}

// 0 = fp32, 1 = fp16, 2 = bf16 (src/jit.rs, `Precision`).
at::ScalarType scalar_type_of(int precision) {
    switch (precision) {
        case 1:
            return at::kHalf;
        case 2:
            return at::kBFloat16;
        default:
            return at::kFloat;
    }
}

// The logits in what a model returns: a tensor; the first item of a tuple or list (aux heads);
// a dict's "logits" entry (Hugging Face style) or its only entry. Undefined when none.
at::Tensor first_tensor(const c10::IValue &v) {
    if (v.isTensor()) return v.toTensor();
    if (v.isTuple()) {
        const auto &items = v.toTupleRef().elements();
        return items.empty() ? at::Tensor() : first_tensor(items[0]);
    }
    if (v.isTensorList()) {
        auto list = v.toTensorList();
        return list.size() == 0 ? at::Tensor() : at::Tensor(list.get(0));
    }
    if (v.isList()) {
        auto list = v.toList();
        return list.size() == 0 ? at::Tensor() : first_tensor(list.get(0));
    }
    if (v.isGenericDict()) {
        auto dict = v.toGenericDict();
        for (const auto &entry : dict)
            if (entry.key().isString() && entry.key().toStringRef() == "logits")
                return first_tensor(entry.value());
        if (dict.size() == 1) return first_tensor(dict.begin()->value());
    }
    return at::Tensor();
}
}  // namespace

// torch::jit::load on `device` (-1 = CPU, n = cuda:n), in eval mode.
extern "C" void *ji_module_load(const char *path, int device, char *err, size_t err_len) {
    return guarded(err, err_len, [&]() -> void * {
        torch::jit::Module m = torch::jit::load(path, device_of(device));
        m.eval();
        return new torch::jit::Module(std::move(m));
    });
}

// Moves the floating-point parameters and buffers to `device` in `precision` (also for a model
// saved after `.half()` or `.double()`, which would otherwise fail on the input). 0 or -1.
extern "C" int ji_module_to(void *module, int device, int precision, char *err, size_t err_len) {
    void *ok = guarded(err, err_len, [&]() -> void * {
        static_cast<torch::jit::Module *>(module)->to(device_of(device), scalar_type_of(precision));
        return module;
    });
    return ok ? 0 : -1;
}

// A copy of `module` with its own methods, hence its own graph executor: a fused graph is
// specialised to the input shape it saw while warming up, so each batch shape gets a copy.
extern "C" void *ji_module_clone(const void *module, char *err, size_t err_len) {
    return guarded(err, err_len, [&]() -> void * {
        // Cloning registers new types and methods in the module's compilation unit, which is
        // not thread-safe.
        static std::mutex clone_lock;
        std::lock_guard<std::mutex> hold(clone_lock);
        return new torch::jit::Module(static_cast<const torch::jit::Module *>(module)->clone());
    });
}

// Runs forward(input) without autograd and returns a new at::Tensor* holding the logits (see
// first_tensor), or NULL with `err` set. `module` may run on several threads at once.
extern "C" void *ji_module_forward(const void *module, const void *input, char *err, size_t err_len) {
    return guarded(err, err_len, [&]() -> void * {
        torch::NoGradGuard no_grad;
        auto *m = const_cast<torch::jit::Module *>(static_cast<const torch::jit::Module *>(module));
        c10::IValue out = m->forward({*static_cast<const at::Tensor *>(input)});
        at::Tensor t = first_tensor(out);
        if (!t.defined())
            throw std::runtime_error(
                "the model returned no tensor (expected a [batch, classes] tensor, a tuple or list "
                "whose first item is one, or a dict with a \"logits\" entry)");
        return new at::Tensor(std::move(t));
    });
}

extern "C" void ji_module_free(void *module) { delete static_cast<torch::jit::Module *>(module); }
