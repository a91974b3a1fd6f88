/* main() of a C action's guest image: read the parameters, call vespid_main, hand back its result. */
#include <stdio.h>
#include <string.h>

#include "../include/vespid.h"
#include "runtime.h"

void vespid_fail(const char *message)
{
	if (!message)
		message = "vespid_fail() was called without a message";
	vsp_finish(VSP_OUT_ERROR, message, strlen(message));
}

void vespid_return(const char *json, size_t len)
{
	vsp_finish(VSP_OUT_OK, json, len);
}

int main(void)
{
	/* Line-buffered like a terminal, so the logs up to a crash are not lost in a buffer. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	size_t len;
	char *params = vsp_input(VSP_INPUT_PARAMS, &len);
	const char *result = vespid_main(params);
	if (!result)
		vespid_fail("vespid_main returned NULL");
	vespid_return(result, strlen(result));
}
