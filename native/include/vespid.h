/*
 * vespid.h: the interface of a C action.
 *
 * A C action is one C file compiled with static musl and linked against the Vespid guest runtime,
 * which provides main(). Define vespid_main():
 *
 *     #include <vespid.h>
 *
 *     const char *vespid_main(const char *params) {
 *         char name[64];
 *         if (vespid_get_string(params, "name", name, sizeof name) < 0)
 *             strcpy(name, "world");
 *         vespid_log("greeting %s", name);          // a log line, like printf to stdout
 *         struct vespid_json *out = vespid_json_new();
 *         vespid_json_string(out, "greeting", name);
 *         vespid_json_number(out, "length", strlen(name));
 *         return vespid_json_finish(out);           // {"greeting":"…","length":5}
 *     }
 *
 * `params` is the invocation's parameters as a NUL-terminated JSON object. Return a JSON object as
 * text (static or heap memory; Vespid copies it), or call vespid_fail() to report an error. Each
 * invocation starts from a snapshot of the action taken right after the C library initialised:
 * statics, heap and stack are as they were then, every time. There are no files, sockets or
 * processes: memory, time, randomness (getrandom) and logs only.
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

/* ---- Reading parameters: top-level fields of a JSON object ---------------------------------- */

/*
 * Copies the string field `key` of `json`, unescaped and NUL-terminated, into out[cap]. Returns its
 * length, -1 if the field is absent or not a string, -2 if it does not fit (out holds a prefix).
 */
int vespid_get_string(const char *json, const char *key, char *out, size_t cap);

/* Reads the number field `key`. Returns 0, or -1 if it is absent or not a number. */
int vespid_get_number(const char *json, const char *key, double *out);

/* Reads the boolean field `key`. Returns 0, or -1 if it is absent or not true/false. */
int vespid_get_bool(const char *json, const char *key, int *out);

/*
 * Finds the raw JSON value of field `key` (any type: object, array, string with quotes…). Returns
 * a pointer into `json` and its length in *len, or NULL if absent.
 */
const char *vespid_get_raw(const char *json, const char *key, size_t *len);

/* ---- Building a result: a JSON object, field by field ----------------------------------------- */

struct vespid_json;

/* A new, empty object. Out of memory ends the invocation with an error. */
struct vespid_json *vespid_json_new(void);
/* Adds a field (the key and string values are escaped as JSON needs). */
void vespid_json_string(struct vespid_json *j, const char *key, const char *value);
void vespid_json_number(struct vespid_json *j, const char *key, double value);
void vespid_json_int(struct vespid_json *j, const char *key, long long value);
void vespid_json_bool(struct vespid_json *j, const char *key, int value);
void vespid_json_null(struct vespid_json *j, const char *key);
/* Adds a field whose value is already JSON text (an object, an array…); not checked. */
void vespid_json_raw(struct vespid_json *j, const char *key, const char *json);
/* Closes the object and returns its text (heap memory, valid until the invocation ends). */
const char *vespid_json_finish(struct vespid_json *j);

/* ---- Logs ------------------------------------------------------------------------------------- */

/* printf to stdout with a newline added: one line of the activation's logs. */
__attribute__((format(printf, 1, 2))) void vespid_log(const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
