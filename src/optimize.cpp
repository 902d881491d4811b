// The libtorch calls tch does not expose: torch.jit.optimize_for_inference / freeze, our zero-pad
// folding pass, and oneDNN Graph (LLGA) fusion. Modules are returned as a new
// `torch::jit::Module*` that src/jit.rs owns (and frees through src/jit.cpp). Exceptions never
// cross into Rust: they become an error message.
#include <ATen/Parallel.h>
#include <torch/csrc/jit/codegen/onednn/interface.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_pooling.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/pass_manager.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/graph_iterator.h>
#include <torch/script.h>

#include "guarded.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {
using ji_rs::guarded;

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// A constant int list of exactly `n` items, or false.
bool const_ints(Value *v, size_t n, std::vector<int64_t> &out) {
    auto iv = torch::jit::toIValue(v);
    if (!iv || !iv->isIntList()) return false;
    out = iv->toIntVector();
    return out.size() == n;
}

// The zero padding [left, right, top, bottom] a pad node applies to the last two dims, or false
// when it is not a constant zero pad of the last one or two dims.
bool zero_pad_of(Node *n, std::vector<int64_t> &lrtb) {
    auto k = n->kind();
    std::vector<int64_t> p;
    if (k == c10::Symbol::fromQualString("aten::pad")) {
        if (n->inputs().size() != 4) return false;
        auto mode = torch::jit::toIValue(n->input(2));
        if (!mode || !mode->isString() || mode->toStringRef() != "constant") return false;
        auto value = torch::jit::toIValue(n->input(3));
        if (!value || !(value->isNone() || (value->isDouble() && value->toDouble() == 0.0) ||
                        (value->isInt() && value->toInt() == 0)))
            return false;
    } else if (k == c10::Symbol::fromQualString("aten::constant_pad_nd")) {
        if (n->inputs().size() != 3) return false;
        auto value = torch::jit::toIValue(n->input(2));
        if (!value || !((value->isDouble() && value->toDouble() == 0.0) ||
                        (value->isInt() && value->toInt() == 0)))
            return false;
    } else {
        return false;
    }
    auto iv = torch::jit::toIValue(n->input(1));
    if (!iv || !iv->isIntList()) return false;
    p = iv->toIntVector();
    if (p.size() != 2 && p.size() != 4) return false;
    for (auto x : p)
        if (x < 0) return false;
    lrtb = {p[0], p[1], p.size() == 4 ? p[2] : 0, p.size() == 4 ? p[3] : 0};
    return true;
}

// Moves the zero pad feeding `conv` (input 0) into the convolution: its own padding when the
// pad is symmetric, else the larger symmetric padding plus zero taps on the kernel's sides, so
// that every output sums the same products (the extra taps only ever multiply by zero).
bool fold_into(Graph &g, Node *pad, Node *conv, const std::vector<int64_t> &lrtb) {
    static const auto conv2d = c10::Symbol::fromQualString("aten::conv2d");
    static const auto convolution = c10::Symbol::fromQualString("aten::_convolution");
    bool is_conv2d = conv->kind() == conv2d;
    if (!is_conv2d && conv->kind() != convolution) return false;
    // conv2d(input, weight, bias, stride, padding, dilation, groups)
    // _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, ...)
    if (is_conv2d && conv->inputs().size() != 7) return false;
    if (!is_conv2d) {
        auto transposed = torch::jit::toIValue(conv->input(6));
        if (!transposed || !transposed->isBool() || transposed->toBool()) return false;
    }
    std::vector<int64_t> padding, dilation, stride;
    if (!const_ints(conv->input(4), 2, padding) || !const_ints(conv->input(5), 2, dilation) ||
        !const_ints(conv->input(3), 2, stride))
        return false;
    int64_t l = lrtb[0], r = lrtb[1], t = lrtb[2], b = lrtb[3];
    int64_t ph = std::max(t, b), pw = std::max(l, r);
    bool asymmetric = l != r || t != b;
    at::Tensor weight;
    if (asymmetric) {
        auto w = torch::jit::toIValue(conv->input(1));
        if (!w || !w->isTensor()) return false;  // weights must be frozen constants
        weight = w->toTensor();
        if (weight.dim() != 4) return false;
        // A zero tap before the kernel shifts it by one dilation step: only exact for 1.
        if ((t != b && dilation[0] != 1) || (l != r && dilation[1] != 1)) return false;
        auto fmt = weight.suggest_memory_format();
        weight = at::constant_pad_nd(weight, {pw - l, pw - r, ph - t, ph - b}, 0)
                     .contiguous(fmt)
                     .detach();
    }
    torch::jit::WithInsertPoint guard(conv);
    if (asymmetric) conv->replaceInput(1, g.insertConstant(weight));
    conv->replaceInput(4, g.insertConstant(std::vector<int64_t>{padding[0] + ph, padding[1] + pw}));
    conv->replaceInput(0, pad->input(0));
    return true;
}

// Pooling written without a stride (`F.max_pool2d(x, 2)`) carries an empty stride list,
// meaning "the kernel size"; oneDNN Graph rejects it ("could not set attribute to the op"),
// so the stride is spelled out (the same operation).
void explicit_pool_strides(std::shared_ptr<Graph> g) {
    static const auto max_pool = c10::Symbol::fromQualString("aten::max_pool2d");
    static const auto avg_pool = c10::Symbol::fromQualString("aten::avg_pool2d");
    torch::jit::DepthFirstGraphNodeIterator it(g);
    for (Node *n = it.next(); n != nullptr; n = it.next()) {
        if ((n->kind() != max_pool && n->kind() != avg_pool) || n->inputs().size() < 3) continue;
        auto kernel = torch::jit::toIValue(n->input(1));
        auto stride = torch::jit::toIValue(n->input(2));
        if (!kernel || !kernel->isIntList() || !stride || !stride->isIntList()) continue;
        if (!stride->toIntVector().empty()) continue;
        auto k = kernel->toIntVector();
        if (k.size() == 1) k.push_back(k[0]);
        torch::jit::WithInsertPoint guard(n);
        n->replaceInput(2, g->insertConstant(k));
    }
}

int fold_zero_pads(std::shared_ptr<Graph> g, int *remaining) {
    std::vector<Node *> pads;
    torch::jit::DepthFirstGraphNodeIterator it(g);
    for (Node *n = it.next(); n != nullptr; n = it.next()) {
        std::vector<int64_t> lrtb;
        if (zero_pad_of(n, lrtb)) pads.push_back(n);
    }
    int folded = 0, left = 0;
    for (Node *pad : pads) {
        std::vector<int64_t> lrtb;
        zero_pad_of(pad, lrtb);
        // Copy: folding changes the use list.
        auto uses = pad->output()->uses();
        for (const auto &u : uses)
            if (u.offset == 0 && fold_into(*g, pad, u.user, lrtb)) folded++;
        if (pad->output()->uses().empty())
            pad->destroy();
        else
            left++;
    }
    torch::jit::ConstantPooling(g);
    torch::jit::EliminateDeadCode(g);
    if (remaining) *remaining = left;
    return folded;
}

// LLGA fusion, but only for graphs optimised on a thread that asked for it: the fuser is a
// process-wide graph pass, and a model run plainly ("optimize": false) in the same process must
// stay unfused. The profiling executor optimises a graph on the thread that calls it.
thread_local bool fuse_here = false;

void register_fusion_pass() {
    static std::once_flag once;
    std::call_once(once, [] {
        torch::jit::registerPrePass([](std::shared_ptr<Graph> &g) {
            if (fuse_here) torch::jit::fuser::onednn::fuseGraph(g);
        });
    });
}
}  // namespace

// device: -1 = CPU (optimize_for_inference: freeze + fusions + MKLDNN), n >= 0 = cuda:n
// (freeze only: MKLDNN layouts are CPU-only). The floating-point weights are converted to fp16
// (`half`) or fp32 before freezing: freezing inlines them as graph constants, which a later
// `to()` cannot reach. (fp32 also brings models saved in fp16 or fp64 to the input's type.)
// Returns a new module, or NULL with `err` set.
extern "C" void *ji_optimize_torchscript(const char *path, int device, int half, char *err, size_t err_len) {
    return guarded(err, err_len, [&]() -> void * {
        c10::Device dev = device < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, device);
        torch::jit::Module m = torch::jit::load(path, dev);
        m.eval();
        m.to(dev, half ? at::kHalf : at::kFloat);
        torch::jit::Module opt = device < 0 ? torch::jit::optimize_for_inference(m) : torch::jit::freeze(m);
        return new torch::jit::Module(opt);
    });
}

// The CPU fast path's base module: loaded on the CPU, weights in fp32 (or bf16), 4-D weights in
// channels-last layout when asked, frozen (conv-BN folding etc.), pooling strides spelled out,
// then zero pads folded into the convolutions that follow them. `stats` receives {pads folded,
// zero pads left}. Returns a new module, or NULL with `err` set.
extern "C" void *ji_fast_prepare(const char *path, int channels_last, int bf16, int *stats, char *err,
                                 size_t err_len) {
    return guarded(err, err_len, [&]() -> void * {
        torch::NoGradGuard no_grad;
        torch::jit::Module m = torch::jit::load(path, c10::Device(c10::kCPU));
        m.eval();
        m.to(bf16 ? at::kBFloat16 : at::kFloat);
        if (channels_last) {
            for (const auto &p : m.parameters(true))
                if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
            for (const auto &b : m.buffers(true))
                if (b.dim() == 4) b.set_data(b.contiguous(at::MemoryFormat::ChannelsLast));
        }
        torch::jit::Module frozen = torch::jit::freeze(m);
        int left = 0;
        explicit_pool_strides(frozen.get_method("forward").graph());
        int folded = fold_zero_pads(frozen.get_method("forward").graph(), &left);
        if (stats) {
            stats[0] = folded;
            stats[1] = left;
        }
        return new torch::jit::Module(frozen);
    });
}

// Turns LLGA fusion on or off for graphs optimised on the calling thread. Returns 0, or -1 with
// `err` set (e.g. a libtorch built without MKLDNN).
extern "C" int ji_fusion_on_this_thread(int on, char *err, size_t err_len) {
    void *ok = guarded(err, err_len, [&]() -> void * {
        TORCH_CHECK(AT_MKLDNN_ENABLED(), "this libtorch was built without MKLDNN (oneDNN)");
        register_fusion_pass();
        fuse_here = on != 0;
        return reinterpret_cast<void *>(1);
    });
    return ok ? 0 : -1;
}

// Counts, in the graph the calling thread last ran through the profiling executor, the oneDNN
// fusion groups and the zero pads (aten::pad / constant_pad_nd). stats = {groups, pads};
// {-1, -1} when there is none.
extern "C" void ji_last_graph_stats(int *stats) {
    stats[0] = stats[1] = -1;
    try {
        auto g = torch::jit::lastExecutedOptimizedGraph();
        if (!g) return;
        int groups = 0, pads = 0;
        torch::jit::DepthFirstGraphNodeIterator it(g);
        for (Node *n = it.next(); n != nullptr; n = it.next()) {
            if (n->kind() == c10::prim::oneDNNFusionGroup) groups++;
            std::vector<int64_t> lrtb;
            if (zero_pad_of(n, lrtb)) pads++;
        }
        stats[0] = groups;
        stats[1] = pads;
    } catch (...) {
    }
}

// Runs cb(ctx, i) for every i in [0, n) on libtorch's intra-op threads (OpenMP; the caller is
// one of them), one index per thread; inline, in order, when there is one thread or the caller
// is already inside a parallel region. Between forward passes libtorch's worker threads are
// idle (or spinning, waiting for work), so CPU work of the same call, split this way, costs no
// thread of its own. `cb` must not throw.
extern "C" void ji_parallel_for(int64_t n, void (*cb)(void *, int64_t), void *ctx) {
    try {
        at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; i++) cb(ctx, i);
        });
    } catch (...) {
        // at::parallel_for rethrows only what its function threw, and cb does not throw.
    }
}
