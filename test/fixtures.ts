// Action sources several test files run.

/** C: multiplies `n` by its `factor` parameter (a default of the action or its package). */
export const DOUBLE_C = `#include <vespid.h>
const char *vespid_main(const char *params) {
    double n = 0, factor = 1;
    vespid_get_number(params, "n", &n);
    vespid_get_number(params, "factor", &factor);
    struct vespid_json *out = vespid_json_new();
    vespid_json_number(out, "n", n * factor);
    return vespid_json_finish(out);
}`;
