/*
 * ji_error.h: the platform's ev_sdk 4.x header set is ji.h + ji_types.h + ji_error.h. Here ji.h
 * declares everything the library implements (JiErrorCode and its JISDK_RET_* codes included);
 * this file adds the 4.x header's face-recognition codes, which this classifier never returns
 * but code written against that header may name.
 */
#include "ji.h"

#ifndef JI_RS_JI_ERROR_H
#define JI_RS_JI_ERROR_H

#define JISDK_RET_NO_FACE_DETECTED (-1000)      /* no face detected */
#define JISDK_RET_FACE_LIB_ID_NOT_EXIST (-1001) /* face library id does not exist */
#define JISDK_RET_FACE_ID_NOT_EXIST (-1002)     /* face id does not exist */
#define JISDK_RET_FACE_ID_EXIST (-1003)         /* face id exists */
#define JISDK_RET_PATH_ERROR (-1004)            /* path error */
#define JISDK_RET_FILE_ERROR (-1005)            /* file error */
#define JISDK_RET_LIGHT_ERROR (-1006)           /* abnormal picture brightness */
#define JISDK_RET_IMAGE_SIZE_ERROR (-1007)      /* image size error */
#define JISDK_RET_MULTI_FACE_DETECTED (-1008)   /* several faces */
#define JISDK_RET_FACE_DB_ID_EXIST (-1009)      /* face database id exists */
#define JISDK_RET_FACE_DB_OVERRUN (-1010)       /* face database over its limit */
#define JISDK_RET_FACE_DB_FORMAT_ERROR (-1011)  /* face database format error */
#define JISDK_RET_FACE_DB_IS_NULL (-1012)       /* face database is empty */
#define JISDK_RET_FACE_REPEAD_ADD (-1013)       /* face added twice (sic) */
#define JISDK_RET_OTHER_FAILED (-1014)          /* other failure */

#endif /* JI_RS_JI_ERROR_H */
