/*
 * example_evsdk: the README's native-API example, compiled and run by the test suite so the
 * documented usage keeps working.   example_evsdk CONFIG IMAGE [ARGS]
 */
#include <stdio.h>

#include "ji.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: example_evsdk CONFIG IMAGE [ARGS]\n");
        return 2;
    }
    printf("libji %s\n", evsdk_version());
    EvsdkHandle *h = NULL;
    if (evsdk_init(argv[1], &h) != EVSDK_OK) { /* NULL = $EV_SDK_CONFIG */
        fprintf(stderr, "init: %s\n", evsdk_last_error());
        return 1;
    }
    char *json = NULL;
    int rc = evsdk_process_file(h, argv[2], argc > 3 ? argv[3] : NULL, &json);
    if (rc == EVSDK_OK) {
        puts(json);
        evsdk_free_string(json); /* results belong to the caller */
    } else {
        fprintf(stderr, "error %d: %s\n", rc, evsdk_last_error());
    }
    evsdk_release(h);
    return rc == EVSDK_OK ? 0 : 1;
}
