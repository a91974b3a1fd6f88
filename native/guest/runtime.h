/* Guest side of the host ABI (include/vespid_abi.h), shared by the C and JavaScript runtimes. */
#ifndef VSP_GUEST_RUNTIME_H
#define VSP_GUEST_RUNTIME_H

#include <stddef.h>

#include "../include/vespid_abi.h"

/*
 * Asks the host for input `kind` (VSP_INPUT_INIT or VSP_INPUT_PARAMS). Returns a heap buffer,
 * NUL-terminated, with its length in *len. The host takes its snapshot on the first PARAMS request.
 */
char *vsp_input(int kind, size_t *len);

/* Hands the result (VSP_OUT_OK: JSON; VSP_OUT_ERROR: message) to the host. Never returns. */
__attribute__((noreturn)) void vsp_finish(int status, const char *data, size_t len);

#endif
