/*
 * vespid.h: the interface of a C action.
 *
 * A C action is one C file compiled with static musl and linked against the Vespid guest runtime,
 * which provides main(). Define vespid_main():
 *
 *     #include <vespid.h>
 *     const char *vespid_main(const char *params) {
 *         printf("got %s\n", params);          // stdout/stderr lines become the activation's logs
 *         return "{\"greeting\": \"hello\"}";  // a JSON object
 *     }
 *
 * `params` is the invocation's parameters as a NUL-terminated JSON object. Return a JSON object as
 * text (static or heap memory; Vespid copies it), or NULL together with vespid_fail() to report an
 * error. Each invocation runs in a fresh virtine: statics start from their initial values every time.
 * There are no files, sockets or processes: memory, time, randomness (getrandom) and logs only.
 */
#ifndef VESPID_H
#define VESPID_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Implemented by the action. */
const char *vespid_main(const char *params);

/*
 * Ends the invocation with an error (activation status "action developer error", result
 * {"error": message}). Does not return.
 */
__attribute__((noreturn)) void vespid_fail(const char *message);

/*
 * Ends the invocation with `json` (len bytes) as its result; what returning from vespid_main does.
 * Does not return.
 */
__attribute__((noreturn)) void vespid_return(const char *json, size_t len);

#ifdef __cplusplus
}
#endif

#endif
