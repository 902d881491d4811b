// Results belong to the predictor, not to the thread that asked: a judge that runs each call in
// a std::thread or std::async and reads the result after the join must read what the call
// returned (ji.h: valid until JI_RETIRED_RESULTS more ended threads' results were retired after
// it). Run by run_tests.sh with MALLOC_PERTURB_ set (a freed result reads as poison) and under
// valgrind (any read of freed memory is an error).
//
// Usage: test_results_lifetime IMAGE_FILE [threads]   (EV_SDK_CONFIG: the colour test model,
// tests/fixtures/generated/core/colour.json; IMAGE_FILE a red image, class 0). `threads` (default
// JI_RETIRED_RESULTS) calls of each kind run, each on its own thread; every result is read only
// after every thread has been joined. Prints one line per kind and a summary; exit 0 when every
// check passed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "ji.h"

namespace {

int g_failures = 0;

void check(bool ok, const std::string &what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

// A solid BGR frame: red -> class 0, green -> 1, blue -> 2 (the colour model).
const unsigned char kColours[3][3] = {{20, 20, 200}, {20, 200, 20}, {200, 20, 20}};

std::vector<unsigned char> solid(int w, int h, int cls) {
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); i += 3) std::memcpy(&px[i], kColours[cls], 3);
  return px;
}

std::string class_field(int cls) { return "\"class_id\":" + std::to_string(cls); }

// What a thread got back: pointers into the predictor's memory, read after the join.
struct Got {
  int rc = -100;
  int cls = -1;
  int w = 0, h = 0;
  const char *json = nullptr;
  const unsigned char *frame = nullptr;  // an out frame's pixels, where the call gives one
  size_t frame_len = 0;
};

void check_got(const Got &g, const std::string &kind, int i) {
  std::string where = kind + " #" + std::to_string(i);
  check(g.rc == 0, where + ": rc " + std::to_string(g.rc));
  std::string json = g.json ? g.json : "";
  check(json.find(class_field(g.cls)) != std::string::npos, where + ": JSON after the join: " + json);
  if (g.frame) {
    std::vector<unsigned char> want = solid(g.w, g.h, g.cls);
    check(g.frame_len == want.size() && std::memcmp(g.frame, want.data(), want.size()) == 0,
          where + ": out frame after the join");
  }
}

Got calc_file(void *pred, const char *path) {
  Got g;
  JI_EVENT ev;
  ev.json = nullptr;
  g.rc = ji_calc_file(pred, path, nullptr, nullptr, &ev);
  g.cls = 0;
  g.json = ev.json;
  return g;
}

Got calc_frame(void *pred, int i) {
  Got g;
  g.cls = i % 3;
  g.w = 20 + i % 7;
  g.h = 12 + i % 5;
  std::vector<unsigned char> px = solid(g.w, g.h, g.cls);
  JI_CV_FRAME in = {g.h, g.w, JI_CV_8UC3, px.data(), g.w * 3};
  JI_CV_FRAME out;
  JI_EVENT ev;
  ev.json = nullptr;
  g.rc = ji_calc_frame(pred, &in, nullptr, &out, &ev);
  g.json = ev.json;
  g.frame = static_cast<const unsigned char *>(out.data);
  g.frame_len = static_cast<size_t>(out.step) * out.rows;
  return g;
}

Got calc_image(void *pred, int i) {
  Got g;
  g.cls = (i + 1) % 3;
  g.w = 16 + i % 5;
  g.h = 10 + i % 3;
  std::vector<unsigned char> px = solid(g.w, g.h, g.cls);
  JiImageInfo info;
  std::memset(&info, 0, sizeof info);
  info.nWidth = g.w;
  info.nHeight = g.h;
  info.nWidthStride = g.w;
  info.nDataLen = static_cast<unsigned>(px.size());
  info.pData = px.data();
  info.nFormat = JI_IMAGE_TYPE_BGR;
  info.nDataType = JI_UNSIGNED_CHAR;
  JiImageInfo *outs = nullptr;
  unsigned int nout = 0;
  JiEvent ev;
  ev.json = nullptr;
  g.rc = ji_calc_image(pred, &info, 1, nullptr, &outs, &nout, &ev);
  g.json = ev.json;
  if (outs && nout == 1) {
    g.frame = static_cast<const unsigned char *>(outs[0].pData);
    g.frame_len = outs[0].nDataLen;
  }
  return g;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: test_results_lifetime IMAGE_FILE [threads]\n");
    return 2;
  }
  const char *path = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : JI_RETIRED_RESULTS;
  void *pred = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
  if (!pred) {
    std::fprintf(stderr, "ji_create_predictor failed: %s\n", evsdk_last_error());
    return 1;
  }

  // std::thread: each thread makes one call of each kind on the shared predictor, keeps what it
  // got, and ends; the results of all three kinds are read only after every thread was joined.
  // With three calls per thread, each thread's slot holds its last (calc_image) result; the
  // earlier two are replaced by its own later calls, as ji.h says, so the threads here make
  // one call each, one kind per thread.
  const char *kinds[3] = {"thread/ji_calc_file", "thread/ji_calc_frame", "thread/ji_calc_image"};
  int per_kind = n / 3 > 0 ? n / 3 : 1;
  std::vector<Got> got(3 * per_kind);
  std::vector<std::thread> threads;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < per_kind; ++i)
      threads.push_back(std::thread([&, k, i] {
        Got &g = got[k * per_kind + i];
        g = k == 0 ? calc_file(pred, path) : k == 1 ? calc_frame(pred, i) : calc_image(pred, i);
      }));
  for (size_t i = 0; i < threads.size(); ++i) threads[i].join();
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < per_kind; ++i) check_got(got[k * per_kind + i], kinds[k], i);
    std::printf("%s: threads=%d read after join\n", kinds[k], per_kind);
  }

  // std::async (a new thread per task with launch::async): the futures' values are read after
  // every task has finished and its thread has ended.
  std::vector<std::future<Got> > futures;
  for (int i = 0; i < n; ++i)
    futures.push_back(std::async(std::launch::async, [pred, i] { return calc_frame(pred, i); }));
  std::vector<Got> async_got;
  for (size_t i = 0; i < futures.size(); ++i) async_got.push_back(futures[i].get());
  // Make sure every task's thread has ended (its results retired) before reading.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < n; ++i) check_got(async_got[i], "std::async/ji_calc_frame", i);
  std::printf("std::async/ji_calc_frame: tasks=%d read after their threads ended\n", n);

  ji_destroy_predictor(pred);
  std::printf("summary: failures=%d\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
