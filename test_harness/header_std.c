/* ji.h must compile cleanly (-pedantic -Werror) as C99 and as C++98, for judge programs and
 * contestant code built with old standards. Compiled, not run, by the Makefile. */
#include "ji.h"
#include "ji_types.h"

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
