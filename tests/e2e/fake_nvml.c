/*
 * fake_nvml.c: a stand-in libnvidia-ml.so.1 for e2e.fault_nvml, found through LD_LIBRARY_PATH
 * ahead of any real one. FAKE_NVML picks its behaviour: "ok" (one 8 GiB GPU, 6 GiB free),
 * "init-fails" (no driver behind it), "count-fails", "read-fails" (the device does not answer).
 */
#include <stdlib.h>
#include <string.h>

typedef struct { unsigned long long total, free, used; } fake_memory;

static const char *mode(void)
{
    const char *m = getenv("FAKE_NVML");
    return m ? m : "ok";
}

int nvmlInit_v2(void) { return strcmp(mode(), "init-fails") == 0 ? 9 : 0; }   /* 9: driver not loaded */
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int result) { return result == 0 ? "Success" : "Fake failure"; }

int nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (strcmp(mode(), "count-fails") == 0) return 999;   /* NVML_ERROR_UNKNOWN */
    *count = 1;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device)
{
    *device = (void *)(size_t)(index + 1);
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *device, fake_memory *memory)
{
    (void)device;
    if (strcmp(mode(), "read-fails") == 0) return 15;   /* NVML_ERROR_GPU_IS_LOST */
    memory->total = 8ULL << 30;
    memory->free = 6ULL << 30;
    memory->used = 2ULL << 30;
    return 0;
}

int nvmlDeviceGetName(void *device, char *name, unsigned int length)
{
    (void)device;
    strncpy(name, "Fake GPU", length);
    return 0;
}
