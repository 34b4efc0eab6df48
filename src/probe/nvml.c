/*
 * nvml.c: NVIDIA GPU memory through NVML, loaded at run time with dlopen so that the library
 * builds and runs where there is no driver. Absence is a normal state (gpu_telemetry = false),
 * never an error; what the numbers mean for offloading layers is policy's call.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

/* The few NVML declarations used, from NVIDIA's documented ABI, so no nvml.h is needed at build
 * time. nvmlReturn_t is an enum (int-sized) whose success value is 0. */
typedef int nvml_return;
typedef struct nvml_device_opaque *nvml_device;
typedef struct nvml_memory {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvml_memory;

enum { NVML_SUCCESS = 0, NVML_NAME_BUFFER = 96 };

struct nvml {
    void *library;   /* NULL: not loaded, nothing below is set */
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    nvml_return (*device_count)(unsigned int *count);
    nvml_return (*device_by_index)(unsigned int index, nvml_device *device);
    nvml_return (*memory_info)(nvml_device device, nvml_memory *memory);
    nvml_return (*device_name)(nvml_device device, char *name, unsigned int length);
    const char *(*error_string)(nvml_return result);   /* optional */
};

/* Loads `name` and initializes NVML; false (and `nvml` cleared) when either is not possible:
 * no library, a library without these symbols, or no driver behind it. */
static bool nvml_load(const char *name, struct nvml *nvml)
{
    memset(nvml, 0, sizeof *nvml);
    void *library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!library) return false;
    /* dlsym returns an object pointer; POSIX guarantees it converts to a function pointer */
    nvml->init = (nvml_return (*)(void))dlsym(library, "nvmlInit_v2");
    nvml->shutdown = (nvml_return (*)(void))dlsym(library, "nvmlShutdown");
    nvml->device_count = (nvml_return (*)(unsigned int *))dlsym(library, "nvmlDeviceGetCount_v2");
    nvml->device_by_index =
        (nvml_return (*)(unsigned int, nvml_device *))dlsym(library, "nvmlDeviceGetHandleByIndex_v2");
    nvml->memory_info = (nvml_return (*)(nvml_device, nvml_memory *))dlsym(library, "nvmlDeviceGetMemoryInfo");
    nvml->device_name =
        (nvml_return (*)(nvml_device, char *, unsigned int))dlsym(library, "nvmlDeviceGetName");
    nvml->error_string = (const char *(*)(nvml_return))dlsym(library, "nvmlErrorString");
    if (!nvml->init || !nvml->shutdown || !nvml->device_count || !nvml->device_by_index ||
        !nvml->memory_info || !nvml->device_name || nvml->init() != NVML_SUCCESS) {
        dlclose(library);
        memset(nvml, 0, sizeof *nvml);
        return false;
    }
    nvml->library = library;
    return true;
}

static void nvml_unload(struct nvml *nvml)
{
    if (!nvml->library) return;
    nvml->shutdown();
    dlclose(nvml->library);
    memset(nvml, 0, sizeof *nvml);
}

static const char *nvml_reason(const struct nvml *nvml, nvml_return result)
{
    return nvml->error_string ? nvml->error_string(result) : "NVML error";
}

static int nvml_query(const struct nvml *nvml, hr_sample *out)
{
    out->gpu_telemetry = false;
    out->n_gpus = 0;
    if (!nvml->library) return HR_OK;
    unsigned int count = 0;
    nvml_return result = nvml->device_count(&count);
    if (result != NVML_SUCCESS)
        return hr_fail(HR_EIO, "NVML cannot count devices: %s (%d)", nvml_reason(nvml, result), result);

    /* A device that cannot be read is left out and reported; the others are still counted. */
    hr_probe_failure failure = {0};
    for (unsigned int index = 0; index < count && out->n_gpus < HR_MAX_GPUS; index++) {
        nvml_device device;
        nvml_memory memory;
        result = nvml->device_by_index(index, &device);
        if (result == NVML_SUCCESS) result = nvml->memory_info(device, &memory);
        if (result != NVML_SUCCESS) {
            hr_probe_failure_note(&failure, hr_fail(HR_EIO, "NVML cannot read GPU %u: %s (%d)", index,
                                                    nvml_reason(nvml, result), result));
            continue;
        }
        hr_gpu_memory *gpu = &out->gpus[out->n_gpus++];
        memset(gpu, 0, sizeof *gpu);
        gpu->total = memory.total;
        gpu->used = memory.used;
        gpu->free = memory.free;
        char name[NVML_NAME_BUFFER];
        if (nvml->device_name(device, name, sizeof name) == NVML_SUCCESS) {
            name[sizeof name - 1] = '\0';
            snprintf(gpu->name, sizeof gpu->name, "%s", name);
        } else {
            snprintf(gpu->name, sizeof gpu->name, "GPU %u", index);
        }
    }
    out->gpu_telemetry = out->n_gpus > 0;
    return hr_probe_failure_return(&failure);
}

/* The process's NVML: loaded once and kept until exit (nvmlInit is slow, tens of milliseconds,
 * and a sampler calls this every tick). Written once under pthread_once, read-only after. */
static struct nvml process_nvml;
static pthread_once_t process_nvml_once = PTHREAD_ONCE_INIT;

static void load_process_nvml(void)
{
    nvml_load("libnvidia-ml.so.1", &process_nvml);
}

int hr_nvml_read(hr_sample *out)
{
    if (!out) return hr_fail(HR_EINVAL, "hr_nvml_read: out is NULL");
    pthread_once(&process_nvml_once, load_process_nvml);
    return nvml_query(&process_nvml, out);
}

int hr_nvml_read_library(const char *library, hr_sample *out)
{
    if (!out || !library) return hr_fail(HR_EINVAL, "hr_nvml_read_library: library and out are required");
    struct nvml nvml;
    if (!nvml_load(library, &nvml)) {
        out->gpu_telemetry = false;
        out->n_gpus = 0;
        return HR_OK;
    }
    int rc = nvml_query(&nvml, out);
    nvml_unload(&nvml);
    return rc;
}
