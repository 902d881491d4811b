// The ev_sdk 4.x asynchronous mode, driven the way the platform's 4.0 test program drives it
// (`test-ji-api -f 2`): the frame lives only during the call, userData comes from `new`, and the
// callback frees what it gets with `delete [] (unsigned char*)outPic.pData` and `delete output`.
// Then: errors through the callback, destroy with requests in flight, many predictors and
// threads at once, callbacks that call back into the library, callbacks that throw. Run under
// valgrind by run_tests.sh (mismatched new/delete and leaks are errors there).
//
// Usage: test_async [platform|errors|destroy|threads|reentrant|throws|all]   (EV_SDK_CONFIG: a
// config of the colour test model with max_image_pixels 10000, tests/fixtures/generated/core/
// small_limit.json). Prints one summary line per mode; exit 0 when every check passed.
//        test_async race ROUNDS   (EV_SDK_CONFIG: the same with "async_queue": 2 and
// "async_workers": 1): ji_destroy_predictor while 8 submitters wait on a full queue.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ji.h"

namespace {

int g_failures = 0;
std::mutex g_fail_mutex;

void fail(const std::string &what) {
  std::lock_guard<std::mutex> lock(g_fail_mutex);
  ++g_failures;
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

#define CHECK(cond, what)                                                   \
  do {                                                                      \
    if (!(cond)) fail(std::string(what) + " (" #cond ", line " + std::to_string(__LINE__) + ")"); \
  } while (0)

// A solid BGR frame, as a cv::Mat's pixels: red -> class 0, green -> 1, blue -> 2.
const unsigned char kColours[3][3] = {{20, 20, 200}, {20, 200, 20}, {200, 20, 20}};

std::vector<unsigned char> solid(int w, int h, int cls) {
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); i += 3) std::memcpy(&px[i], kColours[cls], 3);
  return px;
}

JiImageInfo info_of(std::vector<unsigned char> &px, int w, int h) {
  JiImageInfo info;
  std::memset(&info, 0, sizeof info);
  info.nWidth = w;
  info.nHeight = h;
  info.nWidthStride = w;         // pixels, as the 4.0 test program fills it
  info.nHeightStride = h;
  info.nDataLen = w * h;         // Mat::total(): a pixel count
  info.pData = px.data();
  info.nFormat = JI_IMAGE_TYPE_BGR;
  info.nDataType = JI_UNSIGNED_CHAR;
  return info;
}

// Counts callbacks; the main thread waits for the number it expects.
struct Counter {
  std::mutex m;
  std::condition_variable cv;
  int calls = 0;
  bool wait_for(int n, int seconds = 300) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, std::chrono::seconds(seconds), [&] { return calls >= n; });
  }
  void add() {
    {
      std::lock_guard<std::mutex> lock(m);
      ++calls;
    }
    cv.notify_all();
  }
  int get() {
    std::lock_guard<std::mutex> lock(m);
    return calls;
  }
};

// What the platform's test program allocates per request.
struct UserData {
  Counter *counter;
  void *predictor;
  int thread;   // submitting thread
  int seq;      // per-thread submission number
  int cls;      // expected class, -1 = expect a failure
  int w, h;
  bool reenter;
};

// Per-(predictor, thread) order check: the last seq seen.
std::mutex g_order_mutex;
std::vector<std::vector<int> > g_last_seq;  // [slot][thread]

void check_order(int slot, const UserData *u) {
  std::lock_guard<std::mutex> lock(g_order_mutex);
  int &last = g_last_seq[slot][u->thread];
  CHECK(u->seq == last + 1, "callbacks in submission order");
  last = u->seq;
}

std::string class_id_field(int cls) { return "\"class_id\":" + std::to_string(cls); }

// Checks one result the way the platform's program reads it, then frees it as it does.
void check_and_free(JiData *output, UserData *u) {
  CHECK(output != NULL, "output is not NULL");
  const char *json = output->event.json;
  CHECK(json != NULL, "event.json is set");
  std::string s = json ? json : "";
  if (u->cls >= 0) {
    CHECK(output->event.code == JISDK_CODE_ALARM, "alarm for a coloured frame: " + s);
    CHECK(s.find(class_id_field(u->cls)) != std::string::npos, "class " + std::to_string(u->cls) + ": " + s);
    const JiImageInfo &pic = output->outPic;
    CHECK(pic.pData != NULL && pic.nFormat == JI_IMAGE_TYPE_BGR && pic.nDataType == JI_UNSIGNED_CHAR,
          "a BGR out frame");
    CHECK(pic.nWidth == static_cast<unsigned>(u->w) && pic.nHeight == static_cast<unsigned>(u->h),
          "out frame size");
    if (pic.pData && pic.nDataLen == static_cast<unsigned>(u->w * u->h * 3)) {
      const unsigned char *px = static_cast<const unsigned char *>(pic.pData);
      std::vector<unsigned char> want = solid(u->w, u->h, u->cls);
      CHECK(std::memcmp(px, want.data(), want.size()) == 0, "out frame is the input's copy");
    } else {
      fail("out frame nDataLen");
    }
  } else {
    CHECK(output->event.code == JISDK_CODE_FAILED, "failed event: " + s);
    CHECK(s.find("\"kind\":\"image_too_large\"") != std::string::npos, "error JSON: " + s);
    CHECK(output->outPic.pData == NULL, "no out frame for a failure");
  }
  // Exactly as the platform's test program frees it.
  if (output->outPic.pData != NULL) delete[] (unsigned char *)output->outPic.pData;
  delete output;
}

void on_result(JiData *output, void *user) {
  UserData *u = static_cast<UserData *>(user);
  check_and_free(output, u);
  check_order(0, u);
  Counter *c = u->counter;
  delete u;
  c->add();
}

// Submits one request the way the platform's program does: the frame goes out of scope at once.
int submit(void *pred, Counter *c, int thread, int seq, int cls, int w, int h, bool reenter = false) {
  std::vector<unsigned char> px = solid(w, h, cls < 0 ? 0 : cls);
  JiImageInfo info = info_of(px, w, h);
  UserData *u = new UserData;
  u->counter = c;
  u->predictor = pred;
  u->thread = thread;
  u->seq = seq;
  u->cls = cls;
  u->w = w;
  u->h = h;
  u->reenter = reenter;
  int rc = ji_calc_image_asyn(pred, &info, 1, NULL, u);
  std::memset(px.data(), 0, px.size());  // the library must have copied it already
  if (rc != JISDK_RET_SUCCEED) delete u;
  return rc;
}

void *create() {
  void *pred = ji_create_predictor(JISDK_PREDICTOR_DEFAULT);
  if (!pred) {
    std::fprintf(stderr, "ji_create_predictor failed: %s\n", evsdk_last_error());
    std::exit(1);
  }
  return pred;
}

void reset_order(int slots, int threads) {
  g_last_seq.assign(slots, std::vector<int>(threads, -1));
}

// The platform's -f 2: 20 requests, then wait for 20 callbacks.
void mode_platform() {
  reset_order(1, 1);
  void *pred = create();
  CHECK(ji_set_callback(pred, on_result) == JISDK_RET_SUCCEED, "ji_set_callback");
  Counter c;
  int queued = 0;
  for (int i = 0; i < 20; ++i) queued += submit(pred, &c, 0, i, i % 3, 24 + i, 16 + i % 5) == 0;
  CHECK(queued == 20, "20 requests queued");
  bool all = c.wait_for(20);
  CHECK(all, "20 callbacks came");
  ji_destroy_predictor(pred);
  std::printf("platform: requests=%d callbacks=%d\n", queued, c.get());
}

// Errors come through the callback (image over max_image_pixels), invalid requests fail at once.
void mode_errors() {
  reset_order(1, 1);
  void *pred = create();
  Counter c;
  std::vector<unsigned char> px = solid(8, 8, 0);
  JiImageInfo info = info_of(px, 8, 8);
  int rc = ji_calc_image_asyn(pred, &info, 1, NULL, NULL);
  CHECK(rc == JISDK_RET_FAILED, "no callback set: -1");
  CHECK(ji_set_callback(pred, on_result) == 0, "ji_set_callback");
  info.nFormat = JI_IMAGE_TYPE_YUV420;
  CHECK(ji_calc_image_asyn(pred, &info, 1, NULL, NULL) == JISDK_RET_INVALIDPARAMS, "YUV: -3");
  info.nFormat = JI_IMAGE_TYPE_BGR;
  CHECK(ji_calc_image_asyn(pred, &info, 1, "{oops", NULL) == JISDK_RET_INVALIDPARAMS, "bad args: -3");
  CHECK(ji_calc_image_asyn(pred, NULL, 1, NULL, NULL) == JISDK_RET_INVALIDPARAMS, "NULL frames: -3");
  CHECK(ji_calc_image_asyn(NULL, &info, 1, NULL, NULL) == JISDK_RET_INVALIDPARAMS, "NULL predictor: -3");
  int n = 0;
  for (int i = 0; i < 12; ++i) {
    bool big = i % 2 == 0;  // 120x100 = 12,000 pixels > 10,000
    CHECK(submit(pred, &c, 0, n, big ? -1 : i % 3, big ? 120 : 30, big ? 100 : 20) == 0, "queued");
    ++n;
  }
  CHECK(c.wait_for(n), "every request answered");
  ji_destroy_predictor(pred);
  std::printf("errors: requests=%d callbacks=%d\n", n, c.get());
}

// Destroy with requests in flight: every one answered before destroy returns, none after.
void mode_destroy() {
  reset_order(1, 1);
  void *pred = create();
  CHECK(ji_set_callback(pred, on_result) == 0, "ji_set_callback");
  Counter c;
  for (int i = 0; i < 30; ++i) CHECK(submit(pred, &c, 0, i, i % 3, 40, 30) == 0, "queued");
  int before = c.get();
  ji_destroy_predictor(pred);
  int after = c.get();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(after == 30, "all 30 answered when destroy returns");
  CHECK(c.get() == 30, "none after destroy");
  std::printf("destroy: in_flight=%d answered_at_return=%d\n", 30 - before, after);
}

// Four predictors, each fed by three threads at once.
const int kPreds = 4, kThreadsPer = 3, kPerThread = 10;
void *g_preds[kPreds];

void on_result_multi(JiData *output, void *user) {
  UserData *u = static_cast<UserData *>(user);
  check_and_free(output, u);
  int slot = -1;
  for (int i = 0; i < kPreds; ++i)
    if (g_preds[i] == u->predictor) slot = i;
  CHECK(slot >= 0, "userData comes back unchanged");
  if (slot >= 0) check_order(slot, u);
  Counter *c = u->counter;
  delete u;
  c->add();
}

void mode_threads() {
  reset_order(kPreds, kThreadsPer);
  Counter c;
  for (int p = 0; p < kPreds; ++p) {
    g_preds[p] = create();
    CHECK(ji_set_callback(g_preds[p], on_result_multi) == 0, "ji_set_callback");
  }
  std::vector<std::thread> threads;
  for (int p = 0; p < kPreds; ++p)
    for (int t = 0; t < kThreadsPer; ++t)
      threads.push_back(std::thread([p, t, &c] {
        for (int i = 0; i < kPerThread; ++i)
          CHECK(submit(g_preds[p], &c, t, i, (p + t + i) % 3, 16 + p, 12 + t) == 0, "queued");
      }));
  for (size_t i = 0; i < threads.size(); ++i) threads[i].join();
  int total = kPreds * kThreadsPer * kPerThread;
  CHECK(c.wait_for(total), "every request answered");
  for (int p = 0; p < kPreds; ++p) ji_destroy_predictor(g_preds[p]);
  std::printf("threads: predictors=%d threads=%d callbacks=%d\n", kPreds, kPreds * kThreadsPer, c.get());
}

// Callbacks that call back into the library: a synchronous call on the same predictor with the
// out frame just received, ji_get_version, and a new asynchronous request.
void on_result_reenter(JiData *output, void *user) {
  UserData *u = static_cast<UserData *>(user);
  JiImageInfo pic = output->outPic;  // still ours: freed below
  JiEvent ev;
  ev.json = NULL;
  JiImageInfo *outs = NULL;
  unsigned int nout = 0;
  int rc = ji_calc_image(u->predictor, &pic, 1, NULL, &outs, &nout, &ev);
  CHECK(rc == 0 && ev.json && std::string(ev.json).find(class_id_field(u->cls)) != std::string::npos,
        "synchronous call from the callback");
  CHECK(std::string(ev.json ? ev.json : "") == output->event.json, "same JSON as the async result");
  char version[512];
  CHECK(ji_get_version(version) == 0, "ji_get_version from the callback");
  if (u->reenter)
    CHECK(submit(u->predictor, u->counter, 1, u->seq, (u->cls + 1) % 3, u->w, u->h) == 0,
          "asynchronous request from the callback");
  check_and_free(output, u);
  Counter *c = u->counter;
  delete u;
  c->add();
}

void mode_reentrant() {
  void *pred = create();
  CHECK(ji_set_callback(pred, on_result_reenter) == 0, "ji_set_callback");
  Counter c;
  for (int i = 0; i < 20; ++i) CHECK(submit(pred, &c, 0, i, i % 3, 20, 20, i < 5) == 0, "queued");
  CHECK(c.wait_for(25), "20 requests and 5 from callbacks answered");
  ji_destroy_predictor(pred);
  std::printf("reentrant: callbacks=%d\n", c.get());
}

// Callbacks that throw: the library catches the exception (and says so on stderr); the other
// requests are answered as usual.
void on_result_throw(JiData *output, void *user) {
  UserData *u = static_cast<UserData *>(user);
  check_and_free(output, u);
  Counter *c = u->counter;
  int seq = u->seq;
  delete u;
  c->add();
  if (seq % 2 == 0) throw std::runtime_error("a contestant's callback failed");
}

void mode_throws() {
  void *pred = create();
  CHECK(ji_set_callback(pred, on_result_throw) == 0, "ji_set_callback");
  Counter c;
  for (int i = 0; i < 10; ++i) CHECK(submit(pred, &c, 0, i, i % 3, 20, 20) == 0, "queued");
  CHECK(c.wait_for(10), "every request answered although half the callbacks threw");
  // The predictor still works, synchronously and asynchronously.
  std::vector<unsigned char> px = solid(20, 20, 2);
  JiImageInfo info = info_of(px, 20, 20);
  JiEvent ev;
  ev.json = NULL;
  CHECK(ji_calc_image(pred, &info, 1, NULL, NULL, NULL, &ev) == 0 && ev.json &&
            std::string(ev.json).find(class_id_field(2)) != std::string::npos,
        "a synchronous call after the exceptions");
  CHECK(submit(pred, &c, 0, 11, 1, 20, 20) == 0, "queued after the exceptions");
  CHECK(c.wait_for(11), "answered after the exceptions");
  ji_destroy_predictor(pred);
  std::printf("throws: callbacks=%d\n", c.get());
}

// ji_destroy_predictor while submitters wait on a full queue (async_queue 2, one lane). Each
// round: the first callback holds the lane until a releaser opens it, so the queue fills and
// most of 8 submitters block inside ji_calc_image_asyn; each makes exactly one submission
// (starting a call after the destroy began would be the caller's error). The destroy then
// begins: every submitter must return (0 if its request was accepted, -1 otherwise), every
// accepted request must get exactly one callback before the destroy returns, and nothing may
// touch freed memory (valgrind, in run_tests.sh).
struct RaceRound {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> callbacks{0};
  std::atomic<int> started{0};
};

struct RaceUser {
  RaceRound *round;
  bool first;
};

void on_result_race(JiData *output, void *user) {
  RaceUser *u = static_cast<RaceUser *>(user);
  if (u->first) {
    std::unique_lock<std::mutex> lock(u->round->m);
    u->round->cv.wait(lock, [&] { return u->round->open; });
  }
  if (output->outPic.pData != NULL) delete[] (unsigned char *)output->outPic.pData;
  delete output;
  u->round->callbacks++;
  delete u;
}

int submit_race(void *pred, RaceRound *round, bool first) {
  std::vector<unsigned char> px = solid(16, 12, 1);
  JiImageInfo info = info_of(px, 16, 12);
  RaceUser *u = new RaceUser;
  u->round = round;
  u->first = first;
  int rc = ji_calc_image_asyn(pred, &info, 1, NULL, u);
  if (rc != JISDK_RET_SUCCEED) delete u;
  return rc;
}

void mode_race(int rounds) {
  const int kSubmitters = 8;
  int accepted_total = 0, refused_total = 0, blocked_rounds = 0;
  for (int r = 0; r < rounds; ++r) {
    void *pred = create();
    CHECK(ji_set_callback(pred, on_result_race) == 0, "ji_set_callback");
    RaceRound round;
    // The first request occupies the lane (its callback waits); two more fill the queue.
    CHECK(submit_race(pred, &round, true) == 0, "first request");
    std::vector<int> rcs(kSubmitters, -100);
    std::vector<std::thread> subs;
    for (int t = 0; t < kSubmitters; ++t)
      subs.push_back(std::thread([&, t] {
        round.started++;
        rcs[t] = submit_race(pred, &round, false);
      }));
    // Every submitter has started its one call; give the blocked ones time to reach the wait.
    while (round.started.load() < kSubmitters) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int returned_before = 0;
    for (int t = 0; t < kSubmitters; ++t) returned_before += rcs[t] != -100;
    if (returned_before < kSubmitters) ++blocked_rounds;
    // The releaser opens the first callback once the destroy is under way.
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::lock_guard<std::mutex> lock(round.m);
      round.open = true;
      round.cv.notify_all();
    });
    ji_destroy_predictor(pred);
    int at_return = round.callbacks.load();
    releaser.join();
    for (size_t t = 0; t < subs.size(); ++t) subs[t].join();
    int accepted = 1, refused = 0;
    for (int t = 0; t < kSubmitters; ++t) {
      CHECK(rcs[t] == 0 || rcs[t] == JISDK_RET_FAILED,
            "a submitter returns 0 or -1, got " + std::to_string(rcs[t]));
      accepted += rcs[t] == 0;
      refused += rcs[t] == JISDK_RET_FAILED;
    }
    CHECK(at_return == accepted, "round " + std::to_string(r) + ": " + std::to_string(accepted) +
                                     " accepted, " + std::to_string(at_return) +
                                     " callbacks when the destroy returned");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(round.callbacks.load() == at_return, "no callback after the destroy returned");
    accepted_total += accepted;
    refused_total += refused;
  }
  // Most rounds must really have had submitters blocked on the full queue when the destroy
  // began (else the test would not test the race).
  CHECK(blocked_rounds * 2 >= rounds, "submitters were blocked in most rounds");
  CHECK(refused_total > 0, "some submissions were refused by the destroy");
  std::printf("race: rounds=%d accepted=%d refused=%d blocked_rounds=%d\n", rounds, accepted_total,
              refused_total, blocked_rounds);
}

}  // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "all";
  ji_init(0, NULL);
  bool all = mode == "all";
  bool known = false;
  if (all || mode == "platform") { mode_platform(); known = true; }
  if (all || mode == "errors") { mode_errors(); known = true; }
  if (all || mode == "destroy") { mode_destroy(); known = true; }
  if (all || mode == "threads") { mode_threads(); known = true; }
  if (all || mode == "reentrant") { mode_reentrant(); known = true; }
  if (all || mode == "throws") { mode_throws(); known = true; }
  if (mode == "race") { mode_race(argc > 2 ? std::atoi(argv[2]) : 200); known = true; }
  if (!known) {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  ji_reinit();
  std::printf("summary: failures=%d\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
