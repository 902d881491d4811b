// Compiles ji.h as C++ and uses the platform's names the way code written for the platform's
// own (C++) 4.x header does: ji_calc_image with nOutCount and event passed by reference, a
// JiCallBack taking JiData, the face-library entry points, MAX_VERSION_LENGTH, the 3.x header's
// EV_SDK_VERSION, the enum names.
// Built and run by `make`.
#include <cstdio>
#include <cstring>

#include "ji_types.h"  // the platform's 4.x header names, all of them ji.h
#include "ji_error.h"
#include "ji.h"  // again on purpose: every part of the header is guarded

// An asynchronous callback with the 4.x signature, freeing what it gets as the platform's test
// program does (test_async.cpp runs the asynchronous mode for real).
static void on_result(JiData *output, void *userData) {
    (void)userData;
    delete[] (unsigned char *)output->outPic.pData;
    delete output;
}

int main() {
    int failures = 0;
    char version[MAX_VERSION_LENGTH];
    if (ji_get_version(version) != JISDK_RET_SUCCEED) return 1;
    std::printf("EV_SDK_VERSION %s, %s\n", EV_SDK_VERSION, version);

    JiImageInfo info;
    std::memset(&info, 0, sizeof info);
    info.nFormat = JI_IMAGE_TYPE_BGR;
    info.nDataType = JI_UNSIGNED_CHAR;

    // The 4.x header's form: references.
    JiEvent ev = {JISDK_CODE_NORMAL, nullptr};
    JiImageInfo *out = nullptr;
    unsigned int nOut = 7;
    JiErrorCode rc = ji_calc_image(nullptr, &info, 1, nullptr, &out, nOut, ev);
    if (rc != JISDK_RET_INVALIDPARAMS || ev.code != JISDK_CODE_FAILED || ev.json == nullptr ||
        std::strstr(ev.json, "predictor is NULL") == nullptr || nOut != 0) {
        std::printf("FAIL: reference form: rc=%d code=%d nOut=%u\n", rc, ev.code, nOut);
        failures++;
    }

    // This header's C form: pointers.
    JiEvent ev2 = {JISDK_CODE_NORMAL, nullptr};
    rc = ji_calc_image(nullptr, &info, 1, nullptr, nullptr, nullptr, &ev2);
    if (rc != JISDK_RET_INVALIDPARAMS || ev2.code != JISDK_CODE_FAILED) {
        std::printf("FAIL: pointer form: rc=%d code=%d\n", rc, ev2.code);
        failures++;
    }

    JI_EVENT ev3 = {0, nullptr};
    int rc3 = ji_calc_frame(nullptr, nullptr, nullptr, nullptr, &ev3);
    if (rc3 != JISDK_RET_INVALIDPARAMS) {
        std::printf("FAIL: ji_calc_frame(NULL): rc=%d\n", rc3);
        failures++;
    }

    // Negative code macros are parenthesised, as in the platform's header ("(-1)", not "-1").
#define JI_STR(x) #x
#define JI_XSTR(x) JI_STR(x)
    const char *const spelled[][2] = {
        {JI_XSTR(JISDK_RET_FAILED), "(-1)"},
        {JI_XSTR(JISDK_RET_INVALIDPARAMS), "(-3)"},
        {JI_XSTR(JISDK_RET_UNAUTHORIZED), "(-999)"},
        {JI_XSTR(JISDK_CODE_FAILED), "(-1)"},
        {JI_XSTR(EVSDK_ERR_IMAGE_TOO_LARGE), "(-8)"},
        {JI_XSTR(JISDK_RET_FACE_DB_OVERRUN), "(-1010)"},
    };
    for (const auto &m : spelled) {
        if (std::strcmp(m[0], m[1]) != 0) {
            std::printf("FAIL: a code macro reads %s, expected %s\n", m[0], m[1]);
            failures++;
        }
    }

    // Declared by the 4.x header for face tasks; a classifier answers "not implemented".
    char buf[512] = "untouched";
    const JiErrorCode face[] = {
        ji_create_face_db(nullptr, "db", 1, "desc"),
        ji_delete_face_db(nullptr, 1),
        ji_get_face_db_info(nullptr, 1, buf),
        ji_face_add(nullptr, 1, "name", 2, "/x.jpg", 2, buf),
        ji_face_update(nullptr, 1, "name", 2, "/x.jpg", 2, buf),
        ji_face_delete(nullptr, 1, 2),
    };
    for (JiErrorCode c : face) {
        if (c != JISDK_RET_UNUSED) {
            std::printf("FAIL: an unimplemented entry point returned %d, not -2\n", c);
            failures++;
        }
    }
    // The asynchronous entry points exist with the platform's signatures; a NULL predictor is -3.
    if (ji_set_callback(nullptr, on_result) != JISDK_RET_INVALIDPARAMS ||
        ji_calc_image_asyn(nullptr, &info, 1, nullptr, nullptr) != JISDK_RET_INVALIDPARAMS) {
        std::printf("FAIL: the asynchronous calls did not reject a NULL predictor with -3\n");
        failures++;
    }
    if (std::strcmp(buf, "untouched") != 0) {
        std::printf("FAIL: a face stub wrote into the caller's buffer\n");
        failures++;
    }

    JiPredictorType t = JISDK_PREDICTOR_DEFAULT;
    (void)t;
    std::printf("header_check: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
