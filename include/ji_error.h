/*
 * ji_error.h: the platform's ev_sdk 4.x header set is ji.h + ji_types.h + ji_error.h. Here ji.h
 * declares everything; this file exists so code that includes ji_error.h compiles unchanged.
 */
#include "ji.h"
