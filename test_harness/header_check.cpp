// Compiles ji.h as C++ and uses the platform's names the way code written for the platform's
// own (C++) header does. Built by `make` here; running it checks a few calls end to end.
#include <cstdio>
#include <cstring>

#include "ji.h"

int main() {
    char version[512];
    if (ji_get_version(version) != JISDK_RET_SUCCEED) return 1;
    JiImageInfo info;
    std::memset(&info, 0, sizeof info);
    info.nFormat = JI_IMAGE_TYPE_BGR;
    info.nDataType = JI_UNSIGNED_CHAR;
    JiEvent ev = {JISDK_CODE_NORMAL, nullptr};
    JiErrorCode rc = ji_calc_image(nullptr, &info, 1, nullptr, nullptr, nullptr, &ev);
    JI_EVENT ev3 = {0, nullptr};
    int rc3 = ji_calc_frame(nullptr, nullptr, nullptr, nullptr, &ev3);
    JiPredictorType t = JISDK_PREDICTOR_DEFAULT;
    (void)t;
    std::printf("%s\nnull predictor: rc=%d code=%d rc3=%d\n", version, rc, ev.code, rc3);
    return rc == JISDK_RET_INVALIDPARAMS && ev.code == JISDK_CODE_FAILED && rc3 == JISDK_RET_INVALIDPARAMS &&
                   ev.json != nullptr && std::strstr(ev.json, "predictor is NULL") != nullptr
               ? 0
               : 1;
}
