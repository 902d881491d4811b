/* ji.h must compile cleanly (-pedantic -Werror) as C99 and as C++98, for judge programs and
 * contestant code built with old standards. Compiled, not run, by the Makefile. */
#include "ji.h"
#include "ji_types.h"
#include "ji_error.h"

/* The 4.x header's face-recognition codes are declared, with the platform's values. */
typedef char face_codes_are_declared[(-JISDK_RET_NO_FACE_DETECTED == 1000 &&
                                      -JISDK_RET_FACE_DB_OVERRUN == 1010 &&
                                      -JISDK_RET_OTHER_FAILED == 1014)
                                         ? 1
                                         : -1];

int main(void) {
    char version[MAX_VERSION_LENGTH];
    JiEvent ev;
    JI_EVENT ev3;
    ev.code = JISDK_CODE_NORMAL;
    ev3.code = JISDK_CODE_NORMAL;
    (void)ev;
    (void)ev3;
    return ji_get_version(version) == JISDK_RET_SUCCEED ? 0 : 1;
}
