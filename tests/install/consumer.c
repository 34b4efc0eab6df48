/* consumer.c: an application of libheadroom as installed, built by test_install.sh through
 * pkg-config and through CMake's find_package, to prove both work. */
#include <headroom.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    hr_context *ctx = NULL;
    if (hr_context_create(NULL, &ctx) != HR_OK) return 1;
    hr_model *model = NULL;
    int rc = hr_model_load(ctx, "/nonexistent/model.gguf", NULL, &model);
    printf("headroom %s: %s: %s\n", hr_version(), hr_strerror(rc), hr_last_error());
    hr_context_free(ctx);
    return rc == HR_ENOENT && strstr(hr_last_error(), "not found") ? 0 : 1;
}
