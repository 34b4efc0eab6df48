/*
 * memory.h: one memory sample as plain numbers: what the probes (src/probe/) fill in and what the
 * pure policy (src/policy/) reads. No I/O and no policy here; a field a source could not read
 * keeps its "absent" value and the matching `present` flag stays false.
 */
#ifndef HR_CORE_MEMORY_H
#define HR_CORE_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#define HR_UNLIMITED UINT64_MAX    /* a limit that is not set ("max" in cgroup files) */
#define HR_MAX_CGROUP_LEVELS 16
#define HR_MAX_GPUS 8
#define HR_SCOPE_NAME_MAX 256

/* /proc/meminfo (bytes) and /proc/vmstat (cumulative counters since boot). */
typedef struct hr_host_memory {
    bool present;
    uint64_t total;          /* MemTotal */
    uint64_t free;           /* MemFree */
    uint64_t available;      /* MemAvailable: the kernel's estimate of what can be had without swapping */
    uint64_t cached;         /* Cached */
    uint64_t buffers;        /* Buffers */
    uint64_t shmem;          /* Shmem: cached, but not reclaimable without swap */
    uint64_t swap_total;     /* SwapTotal */
    uint64_t swap_free;      /* SwapFree */
    bool vmstat_present;
    uint64_t pswpin;         /* pages swapped in since boot */
    uint64_t pswpout;        /* pages swapped out since boot */
    uint64_t pgmajfault;     /* major page faults since boot */
} hr_host_memory;

/* One level of the process's cgroup path, from its own cgroup up to the root. */
typedef struct hr_cgroup_level {
    char path[HR_SCOPE_NAME_MAX];  /* the cgroup's path, e.g. "/user.slice/app.scope" */
    int version;                   /* 1 or 2 */
    uint64_t max;            /* v2 memory.max, v1 memory.limit_in_bytes; HR_UNLIMITED if none */
    uint64_t high;           /* v2 memory.high (throttling starts here); HR_UNLIMITED if none or v1 */
    uint64_t current;        /* v2 memory.current, v1 memory.usage_in_bytes */
    uint64_t inactive_file;  /* reclaimable page cache: v2 memory.stat inactive_file, v1 total_inactive_file */
    uint64_t active_file;    /* v2 active_file, v1 total_active_file */
    uint64_t swap_current;   /* v2 memory.swap.current; 0 where absent */
    bool events_present;
    uint64_t events_high;    /* v2 memory.events: times usage went over memory.high */
    uint64_t events_max;     /* times usage hit memory.max (v1: memory.failcnt) */
    uint64_t events_oom;     /* times the OOM killer was invoked (v1: memory.oom_control under_oom) */
    uint64_t events_oom_kill;/* processes it killed (v1: memory.oom_control oom_kill) */
} hr_cgroup_level;

/* Pressure stall information: a `some` or `full` line of /proc/pressure/memory or a cgroup's
 * memory.pressure. Averages are percentages of wall time; total is microseconds since boot. */
typedef struct hr_psi_line {
    double avg10, avg60, avg300;
    uint64_t total_us;
} hr_psi_line;

typedef struct hr_psi {
    bool present;
    bool has_full;           /* old kernels and some scopes have no `full` line */
    hr_psi_line some, full;
} hr_psi;

/* The process itself (/proc/self/status and /proc/self/stat). */
typedef struct hr_process_memory {
    bool present;
    uint64_t rss;            /* VmRSS */
    uint64_t peak_rss;       /* VmHWM: the watermark */
    uint64_t rss_file;       /* RssFile: file-backed resident pages (mmapped weights among them) */
    uint64_t rss_anon;       /* RssAnon */
    uint64_t major_faults;   /* majflt: page-ins that had to wait for the disk */
} hr_process_memory;

typedef struct hr_gpu_memory {
    char name[96];
    uint64_t total, used, free;
} hr_gpu_memory;

/* macOS (host_statistics64 and sysctls), recorded as numbers so that all arithmetic on them is
 * shared code, tested on Linux with recorded values. */
typedef struct hr_darwin_memory {
    bool present;
    uint64_t page_size;
    uint64_t memsize;                 /* hw.memsize */
    uint64_t free_pages, active_pages, inactive_pages, speculative_pages, wired_pages;
    uint64_t purgeable_pages, external_pages;      /* file-backed */
    uint64_t compressor_pages;                     /* pages held by the compressor */
    uint64_t swapins, swapouts;                    /* cumulative */
    int pressure_level;               /* kern.memorystatus_vm_pressure_level: 1 normal, 2 warn, 4 critical */
} hr_darwin_memory;

typedef struct hr_sample {
    double timestamp;                 /* monotonic seconds when it was taken */
    hr_host_memory host;
    int n_cgroups;                    /* levels in cgroups[], own cgroup first */
    hr_cgroup_level cgroups[HR_MAX_CGROUP_LEVELS];
    hr_psi psi_host;                  /* /proc/pressure/memory */
    hr_psi psi_cgroup;                /* the own cgroup's memory.pressure (v2 only) */
    hr_process_memory self;
    bool gpu_telemetry;               /* false: no NVML (a normal state) */
    int n_gpus;
    hr_gpu_memory gpus[HR_MAX_GPUS];
    hr_darwin_memory darwin;
} hr_sample;

#endif /* HR_CORE_MEMORY_H */
