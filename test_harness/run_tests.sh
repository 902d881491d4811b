#!/usr/bin/env bash
# Runs the C test program on the generated fixtures and checks what it prints, then runs it
# under valgrind (zero errors, no definite leaks). Usage: run_tests.sh path/to/test-ji-api
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/build/test-ji-api}
fx=$here/../tests/fixtures/generated/core
img=$fx/images
export EV_SDK_CONFIG=$fx/colour.json
pass=0
fail=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# check NAME EXPECTED-EXIT PATTERN... -- ARGS: runs the program, checks exit code and that
# every PATTERN (grep -E) appears in its output.
check() {
  local name=$1 want=$2; shift 2
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  "$bin" "$@" >"$out/$name.log" 2>&1
  local rc=$? ok=1
  [ "$rc" = "$want" ] || { echo "  exit $rc, expected $want"; ok=0; }
  for p in "${patterns[@]}"; do
    grep -Eq -- "$p" "$out/$name.log" || { echo "  missing: $p"; ok=0; }
  done
  if [ $ok = 1 ]; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/    /' "$out/$name.log" | head -20; fi
}

check calc_file 0 'rc=0 code=0' '"class":"有害垃圾_杀虫剂"' '"class":"可回收物_塑料瓶"' 'summary: failures=0 alarms=2' \
  -- -f file -i "$img/red.jpg,$img/green.png"
check calc_file_numbered 0 '"class":"厨余垃圾_果皮"' 'Total processing time' -- -f 3 -i "$img/blue.jpg"
check calc_buffer 0 'rc=0' '"class_id":2' -- -f buffer -i "$img/blue.png" -o "$out/copy.png"
cmp -s "$img/blue.png" "$out/copy.png" && { pass=$((pass + 1)); echo "ok   calc_buffer_outfile"; } || { fail=$((fail + 1)); echo "FAIL calc_buffer_outfile"; }
check calc_frame_bgr_padded 0 'rc=0 code=0' '"class_id":0' '"class_id":1' '"class_id":2' -- -f frame -i "$img/red.bmp,$img/green.bmp,$img/blue.bmp"
check calc_image_batch 0 'rc=0' '"frames":\[' '"model_data":\{"frames":3\}' -- -f image -b 3 -i "$img/blue.bmp,$img/green.bmp,$img/red.bmp"
check calc_image_async 0 'async: requests=6 callbacks=6' 'summary: failures=0 alarms=6' \
  'red.bmp rc=0 code=0' '"class_id":0' '"class_id":1' '"class_id":2' '"confidence":1.0' \
  -- -f async -r 2 -i "$img/red.bmp,$img/green.bmp,$img/blue.bmp"
# A file the frame reader cannot read is a failure: counted, and the exit status says so.
check frame_unreadable_fails 1 'cannot read .*red.jpg as BMP/PPM' 'summary: failures=1 alarms=1' -- -f frame -i "$img/red.jpg,$img/red.bmp"
check threads_failures_counted 1 'threads=5 shared=0 calls=5 failures=5' 'summary: failures=5 alarms=0' -- -f threads -i "$img/not_an_image.jpg"
check calc_image_single 0 'rc=0 code=0' '"class_id":2' -- -f image -i "$img/blue.bmp"
check args_topk 0 '"topk":\[' -- -f file -i "$img/red.jpg" -a '{"topk": 3}'
check args_thresh_normal 0 'rc=0 code=1' '"target_info":null' 'normals=1' -- -f file -i "$img/red.jpg" -a '{"thresh": 1.5}'
check args_invalid 1 'rc=-3 code=-1' '"error":\{' -- -f file -i "$img/red.jpg" -a '{oops'
check bad_image 1 'rc=-1 code=-1' 'summary: failures=1 alarms=0' 'not_an_image.jpg' '"kind":"decode"' -- -f file -i "$img/not_an_image.jpg"
check missing_file 1 'rc=-1 code=-1' '"kind":"io"' -- -f file -i "$img/does_not_exist.jpg"
check video_unused 1 'rc=-2' 'summary: failures=1' -- -f video -i "$img/red.jpg"
check version 0 '"sdk_version":"[0-9.]+"' -- -f version
check create_destroy_loop 0 'loop=20 failures=0' -- -f loop -n 20 -i "$img/red.jpg"
check threads_own_predictors 0 'threads=5 shared=0 calls=50 failures=0' 'summary: failures=0 alarms=50 normals=0' -- -f threads -r 10 -i "$img/red.jpg"
check threads_shared_predictor 0 'threads=5 shared=1 calls=50 failures=0' -- -f shared -r 10 -i "$img/green.jpg"
EV_SDK_CONFIG=$fx/missing_model.json check create_fails_cleanly 1 'ji_create_predictor failed: .*nope.pt' -- -f file -i "$img/red.jpg"
# Two copies of libji.so in one process (tools/ab_bench.c): each its own handle, same JSON.
lib=${LIBDIR:-$here/../target/release}/libji.so
cp "$lib" "$out/libji_copy.so" &&
"$here/build/ab_bench" --rounds 2 "$fx/colour.json" "$lib" "$out/libji_copy.so" \
  "$img/red.jpg" "$img/green.png" "$img/blue.bmp" >"$out/ab.log" 2>&1 &&
  grep -Eq '^B/A [0-9.]+ \(rounds [0-9.]+-[0-9.]+; 2 rounds x 3 files' "$out/ab.log" && ! grep -q 'same library' "$out/ab.log" &&
  { pass=$((pass + 1)); echo "ok   ab_bench_two_copies"; } || { fail=$((fail + 1)); echo "FAIL ab_bench_two_copies"; cat "$out/ab.log"; }
"$here/build/example_evsdk" "$fx/colour.json" "$img/blue.png" '{"topk": 2}' >"$out/example.log" 2>&1 &&
  grep -q '"class":"厨余垃圾_果皮"' "$out/example.log" && grep -q '"topk":\[' "$out/example.log" &&
  { pass=$((pass + 1)); echo "ok   example_evsdk"; } || { fail=$((fail + 1)); echo "FAIL example_evsdk"; cat "$out/example.log"; }
"$here/build/example_evsdk" "$fx/missing_model.json" "$img/blue.png" >"$out/example_bad.log" 2>&1
[ $? = 1 ] && grep -q "init: model load error.*nope.pt" "$out/example_bad.log" &&
  { pass=$((pass + 1)); echo "ok   example_evsdk_bad_config"; } || { fail=$((fail + 1)); echo "FAIL example_evsdk_bad_config"; cat "$out/example_bad.log"; }
# tools/package.sh's tree (profile "none": libji.so alone) works with the host's libtorch on
# LD_LIBRARY_PATH (its libji.so, its config). test_harness/install_check.sh covers the
# self-contained profiles.
if "$here/../tools/package.sh" "$out/pkg" --model "$fx/model/colour.pt" --classes "$fx/model/class.txt" \
    --config "$fx/colour.json" >"$out/package.log" 2>&1; then
  # A marker setting proves the packaged config (not the exported one) is read.
  sed -i 's/"device": "cpu"/"device": "cpu", "thresh": 1.5/' "$out/pkg/config/algo_config.json"
  LD_LIBRARY_PATH="$(readlink -f "$here/../.venv/libtorch")/lib" EV_SDK_CONFIG="$out/pkg/config/algo_config.json" \
    check packaged_tree 0 'rc=0 code=1' '"class":"厨余垃圾_果皮"' '"target_info":null' -- -f file -i "$img/blue.jpg"
else
  fail=$((fail + 1)); echo "FAIL package.sh"; tail -20 "$out/package.log"
fi
# The asynchronous mode (ji_set_callback / ji_calc_image_asyn), as the platform's C++ test
# program drives it; small_limit.json: the colour model with max_image_pixels 10000.
EV_SDK_CONFIG=$fx/small_limit.json bin="$here/build/test_async" check async_cpp 0 \
  'platform: requests=20 callbacks=20' 'errors: requests=12 callbacks=12' \
  'destroy: in_flight=[0-9]+ answered_at_return=30' 'threads: predictors=4 threads=12 callbacks=120' \
  'reentrant: callbacks=25' 'throws: callbacks=11' 'caught, the next requests go on' 'summary: failures=0' -- all
# ji_destroy_predictor while 8 submitters wait on a full queue (queue 2, one lane), 200 rounds.
sed -e 's/^{/{"async_queue": 2, "async_workers": 1, /' -e "s#\"model/#\"$fx/model/#g" "$fx/small_limit.json" >"$out/race.json"
EV_SDK_CONFIG=$out/race.json bin="$here/build/test_async" check async_destroy_race 0 \
  'race: rounds=200 accepted=[0-9]+ refused=[1-9][0-9]* blocked_rounds=[0-9]+' 'summary: failures=0' -- race 200
# Results read after the thread that asked was joined; MALLOC_PERTURB_ poisons freed memory, so
# a result freed with its thread would read as garbage.
MALLOC_PERTURB_=165 bin="$here/build/test_results_lifetime" check results_outlive_threads 0 \
  'thread/ji_calc_file: threads=21 read after join' 'thread/ji_calc_frame: threads=21' \
  'thread/ji_calc_image: threads=21' 'std::async/ji_calc_frame: tasks=64 read after their threads ended' \
  'summary: failures=0' -- "$img/red.jpg"
"$here/build/header_check" >"$out/header_check.log" 2>&1 && { pass=$((pass + 1)); echo "ok   header_as_cxx"; } || { fail=$((fail + 1)); echo "FAIL header_as_cxx"; cat "$out/header_check.log"; }

if [ "${SKIP_VALGRIND:-0}" != 1 ]; then
  command -v valgrind >/dev/null || { echo "valgrind is not installed (tools/setup.sh installs it)"; exit 1; }
  # libtorch loads slowly under valgrind (~1.5 min a run): one run covers create/destroy,
  # decode, file and error paths; one covers raw frames and the batch ABI.
  vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
      --suppressions="$here/valgrind.supp")
  for args in "-f loop -n 3 -i $img/red.jpg" "-f image -b 3 -i $img/red.bmp,$img/green.bmp,$img/blue.bmp"; do
    name="valgrind ${args%% -i*}"
    # shellcheck disable=SC2086
    "${vg[@]}" "$bin" $args >"$out/vg.log" 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -q "failures=[1-9]" "$out/vg.log"; then
      pass=$((pass + 1)); echo "ok   $name"
    else
      fail=$((fail + 1)); echo "FAIL $name (exit $rc)"; grep -E "==[0-9]+==" "$out/vg.log" | head -40
    fi
  done
  # The asynchronous mode under valgrind: C++ new/delete across the boundary, worker threads,
  # drain on destroy (a mismatched free or a leaked JiData is an error here).
  # Then the destroy race (fewer rounds) and results read after their threads ended.
  vg_run() { # NAME CONFIG PROGRAM ARGS...
    local name=$1 cfg=$2; shift 2
    EV_SDK_CONFIG=$cfg "${vg[@]}" "$@" >"$out/vg_$name.log" 2>&1
    local rc=$?
    if [ $rc = 0 ] && grep -q "summary: failures=0" "$out/vg_$name.log"; then
      pass=$((pass + 1)); echo "ok   valgrind $name"
    else
      fail=$((fail + 1)); echo "FAIL valgrind $name (exit $rc)"; grep -E "==[0-9]+==|FAIL" "$out/vg_$name.log" | head -40
    fi
  }
  vg_run test_async "$fx/small_limit.json" "$here/build/test_async" all
  vg_run test_async_race "$out/race.json" "$here/build/test_async" race 6
  vg_run test_results_lifetime "$fx/colour.json" "$here/build/test_results_lifetime" "$img/red.jpg" 12
fi

echo "c-tests: $pass passed, $fail failed"
[ $fail = 0 ]
