/*
 * probe.h: the library's internal interface to the sources of memory facts (src/probe/).
 * Probes read the kernel's numbers into core/memory.h's plain structs and decide nothing: what a
 * number means for the process is policy (src/policy/), and when to read is the monitor's call.
 *
 * Every /proc and /sys read goes through an hr_fsroot (fsroot.c), so unit tests run these same
 * parsers on recorded trees under tests/fixtures/<scenario>/. Functions return HR_OK or a negative
 * HR_E* code with the thread's sentence set (core/error.h). A source that is simply not there (no
 * PSI, no cgroup mount, no swap, no NVML) is HR_ENOENT or a `present = false`, never a crash.
 * Thread-safety: every function may be called from any thread; none keeps state between calls
 * except nvml.c's library handle, which is loaded once per process.
 */
#ifndef HR_PROBE_PROBE_H
#define HR_PROBE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

/* ---- fsroot.c: the seam ------------------------------------------------------------------ */

#define HR_FSROOT_PREFIX_MAX 1024
#define HR_FS_PATH_MAX 4096

/* Where "/" is for every probe read: "" is the real filesystem; a fixture tree such as
 * "tests/fixtures/v1-container" makes "/proc/meminfo" read ".../v1-container/proc/meminfo".
 * A plain value: copy it freely; probes only read it. */
typedef struct hr_fsroot {
    char prefix[HR_FSROOT_PREFIX_MAX];   /* no trailing '/' */
    size_t prefix_length;
} hr_fsroot;

/* Sets `root` to `prefix` (NULL or "" = the real filesystem; a trailing '/' is dropped).
 * HR_EINVAL when the prefix does not fit. */
int hr_fsroot_init(hr_fsroot *root, const char *prefix);

/* Writes the rooted form of `absolute_path` (which starts with '/') into `buffer`, for callers
 * that must open a file themselves (trigger and event fds). `root` NULL = the real filesystem,
 * and then any path is taken as it is: that is how paths rooted already (hr_cgroup_location's)
 * are read again. HR_EINVAL when a prefixed path is not absolute or the result does not fit. */
int hr_fs_path(const hr_fsroot *root, const char *absolute_path, char *buffer, size_t capacity);

/* Reads the whole of a small file into `buffer` and NUL-terminates it; *length excludes the NUL.
 * HR_ENOENT: no such file (a normal answer for an optional source); HR_EACCES: not readable;
 * HR_ENOTSUP: the kernel refused the read (PSI disabled, say); HR_EIO: anything else, including a
 * file longer than capacity - 1 bytes (buffer then holds the first capacity - 1 bytes). */
int hr_fs_read(const hr_fsroot *root, const char *absolute_path, char *buffer, size_t capacity,
               size_t *length);

/* Calls `visit` with each line of a file of any size (NUL-terminated, without its '\n'),
 * reading through a fixed buffer, no allocation. `visit` returns non-zero to stop early (a
 * caller that found what it wanted). Lines longer than 4095 bytes are skipped: no line the
 * probes look for is that long (mountinfo's overlay lines are). Errors as hr_fs_read. */
int hr_fs_read_lines(const hr_fsroot *root, const char *absolute_path,
                     int (*visit)(char *line, void *user_data), void *user_data);

/* True for the codes that mean "this source is not here" (HR_ENOENT, HR_EACCES, HR_ENOTSUP): a
 * normal state for optional sources, as opposed to a file that exists but is broken. */
bool hr_fs_is_absence(int code);

/* The first real failure among several independent reads, kept with its sentence, since later
 * reads overwrite the thread's sentence. Absences are not failures. Start from {0}. */
typedef struct hr_probe_failure {
    int code;
    char sentence[512];
} hr_probe_failure;

/* Records `code` with the thread's current sentence if it is the first real failure. */
void hr_probe_failure_note(hr_probe_failure *failure, int code);

/* HR_OK, or the first failure's code with its sentence set again for the calling thread. */
int hr_probe_failure_return(const hr_probe_failure *failure);

/* ---- parse.c: the small text parsers every source shares ---------------------------------- */

/* Reads a decimal unsigned number at `text` (no sign, no spaces); *end points past it.
 * false (value untouched) when there is no digit or the number does not fit in 64 bits. */
bool hr_parse_u64(const char *text, const char **end, uint64_t *value);

/* Reads "12.34" (digits, an optional '.' and digits) without the locale: strtod would read
 * "0.50" as 0 under a locale whose decimal mark is a comma. */
bool hr_parse_decimal(const char *text, const char **end, double *value);

/* One wanted key of a "key value" file (meminfo, vmstat, memory.stat, memory.events). */
typedef struct hr_key_u64 {
    const char *key;      /* the whole first token, e.g. "MemTotal:" or "inactive_file" */
    uint64_t *value;      /* where the number goes; untouched when not found */
    bool found;           /* set by hr_scan_keys */
} hr_key_u64;

/* Scans `text` line by line: the first token, whitespace, a decimal number (anything after it,
 * such as " kB", is ignored). Fills each wanted key the first time it appears; a wanted key whose
 * value is not a number that fits in 64 bits stays not found. Returns how many were found. */
int hr_scan_keys(const char *text, hr_key_u64 *keys, int n_keys);

/* The same for one line (for hr_fs_read_lines visitors). */
int hr_scan_key_line(const char *line, hr_key_u64 *keys, int n_keys);

/* ---- meminfo.c: /proc/meminfo and /proc/vmstat --------------------------------------------- */

/* Fills `out` from /proc/meminfo (kB converted to bytes) and sets out->present. MemTotal, MemFree
 * and MemAvailable are required (HR_EFORMAT without them: a zero "available" would read as a
 * machine out of memory); the other fields are 0 when absent. The vmstat fields are untouched. */
int hr_meminfo_read(const hr_fsroot *root, hr_host_memory *out);

/* Fills pswpin, pswpout and pgmajfault from /proc/vmstat and sets out->vmstat_present. All three
 * or none: some without the others is HR_EFORMAT; none (a kernel built without VM event
 * counters) is HR_ENOENT, an absent source. Kernels without swap still print the pswp counters. */
int hr_vmstat_read(const hr_fsroot *root, hr_host_memory *out);

/* ---- cgroup.c: cgroup v2 and v1 memory controllers --------------------------------------- */

/* Where the process's memory cgroup is. Found from /proc/self/cgroup and /proc/self/mountinfo. */
typedef struct hr_cgroup_location {
    int version;                          /* 1 or 2: the hierarchy the memory controller is in */
    char path[HR_FS_PATH_MAX];            /* the own cgroup as /proc/self/cgroup names it */
    char mount_root[HR_FS_PATH_MAX];      /* mountinfo field 4: the part of `path` above the mount */
    char directory[HR_FS_PATH_MAX];       /* rooted directory of the own memory cgroup */
    char mount_directory[HR_FS_PATH_MAX]; /* rooted mount point: the walk's last level */
    /* The own cgroup2 directory even when memory is on v1 (a "hybrid" host): PSI is kept per
     * cgroup2 group whatever controller is enabled, so memory.pressure is read from here.
     * "" when there is no cgroup2 mount. */
    char unified_directory[HR_FS_PATH_MAX];
} hr_cgroup_location;

/* Finds the own memory cgroup. HR_ENOENT when there is none (no cgroup file, no memory
 * controller, no matching mount): a normal state on a host without cgroups or in a chroot.
 * Preference: a v1 line whose controllers include "memory" with a v1 memory mount; otherwise the
 * v2 "0::" line with a cgroup2 mount. A path outside the mount's root (a process moved out of a
 * container's namespace) is taken as the mount's root. */
int hr_cgroup_locate(const hr_fsroot *root, hr_cgroup_location *out);

/* Reads the memory files of every level from the own cgroup up to the mount's root, own first.
 * Levels above the own one that have no limit are read for their limit only (usage, page cache
 * and events stay zero): they bind nothing, and skipping them halves a sample's cost. Levels,
 * into levels[0..max_levels). Levels whose files are absent (the root cgroup has no memory.max)
 * are still listed, with HR_UNLIMITED limits and zero usage, so the hierarchy is visible; beyond
 * max_levels the upper levels are left out. *n_levels is always set. Returns HR_OK, or the first
 * HR_EFORMAT / HR_EIO of a file that exists but could not be read or parsed: every level is
 * filled regardless, the broken field keeping its absent value. The location's directories are
 * rooted already, so no hr_fsroot is passed. */
int hr_cgroup_read_levels(const hr_cgroup_location *location, hr_cgroup_level *levels,
                          int max_levels, int *n_levels);

/* ---- psi.c: pressure stall information --------------------------------------------------- */

/* Parses the text of a pressure file into `out` (present, has_full, some, full). HR_EFORMAT when
 * there is no complete `some` line; a missing or broken `full` line only clears has_full. */
int hr_psi_parse(const char *text, hr_psi *out);

/* Reads and parses one pressure file (e.g. "/proc/pressure/memory" or a cgroup's
 * memory.pressure given as a rooted path with `root` NULL). */
int hr_psi_read(const hr_fsroot *root, const char *absolute_path, hr_psi *out);

/* Registers a PSI trigger on `rooted_path` (a pressure file, already rooted with hr_fs_path):
 * the kernel signals POLLPRI on *fd_out when `kind` ("some" or "full") stalls reach stall_us
 * within any window_us. The caller owns the fd (poll it for POLLPRI, close it to unregister).
 * HR_EINVAL for arguments the kernel would refuse (window 500 ms..10 s, stall <= window);
 * HR_ENOTSUP when the kernel refuses the trigger though the file reads (unprivileged processes
 * may only use windows that are multiples of 2 s; PSI triggers disabled): sample instead.
 * HR_ENOENT / HR_EACCES when the file is absent / not writable. */
int hr_psi_trigger_open(const char *rooted_path, const char *kind, uint64_t stall_us,
                        uint64_t window_us, int *fd_out);

/* ---- cgroup_events.c: cgroup v1 memory.pressure_level notifications ------------------------ */

/* Registers for the v1 memory cgroup at `rooted_directory` (hr_cgroup_location.directory)
 * to signal `level` ("low", "medium" or "critical"): returns in *fd_out a non-blocking eventfd
 * that becomes readable (an 8-byte count) each time the level fires. The caller owns it; closing
 * it unregisters. HR_EINVAL for another level, HR_ENOENT when the directory has no
 * memory.pressure_level (not a v1 memory cgroup), HR_EACCES when cgroup.event_control is not
 * writable. Linux only. */
int hr_cgroup_pressure_level_open(const char *rooted_directory, const char *level, int *fd_out);

/* ---- self.c: the process itself ---------------------------------------------------------- */

/* Fills `out` from /proc/self/status (VmRSS, VmHWM required; RssFile, RssAnon 0 where the
 * kernel is older than 4.5) and majflt from /proc/self/stat. */
int hr_self_read(const hr_fsroot *root, hr_process_memory *out);

/* Parses the text of /proc/<pid>/stat for majflt (field 12). The command name in field 2 is in
 * parentheses and may itself hold spaces and ')', so fields are counted from the last ')'. */
int hr_self_parse_stat(const char *text, uint64_t *major_faults);

/* ---- nvml.c: NVIDIA GPUs through NVML, loaded at run time --------------------------------- */

/* The process-wide NVML, loaded on first use (dlopen("libnvidia-ml.so.1") and nvmlInit) and kept
 * until exit. Fills out->gpu_telemetry, n_gpus and gpus[]; no library, no driver or no device is
 * gpu_telemetry = false and HR_OK: a normal state. HR_EIO when a device that NVML listed cannot
 * be read. */
int hr_nvml_read(hr_sample *out);

/* The same against a named library, loaded for this call and released after: the seam that lets
 * tests take the absence path on a machine that has NVML. */
int hr_nvml_read_library(const char *library, hr_sample *out);

/* ---- darwin.c: macOS (compiled on Apple only) -------------------------------------------- */

/* Fills the raw macOS counters (page counts, hw.memsize, the pressure level); no arithmetic. */
int hr_darwin_read(hr_darwin_memory *out);

/* A dispatch memory-pressure source (warn and critical) whose handler writes a byte to a pipe
 * each time the system's level rises; *fd_out is the pipe's non-blocking read end, to poll.
 * The source lives for the rest of the process (closing the fd only stops the bytes). */
int hr_darwin_pressure_source_open(int *fd_out);

/* Fills the process's resident size and its peak from task_info; major_faults stays 0 (Mach
 * counts every fault, not page-ins). */
int hr_darwin_read_self(hr_process_memory *out);

/* ---- sample.c: one full sample --------------------------------------------------------------- */

/* Reads every source into `out` (zeroed first; `timestamp` is stored as given: the caller owns
 * the clock). `root` NULL = the real filesystem; a fixture root also skips NVML, which is not part
 * of a recorded tree. Sources that are absent stay present = false and do not fail the call.
 * Returns HR_OK; HR_EINVAL for NULL `out`; or the first HR_EFORMAT / HR_EIO of a source that
 * exists but is broken, with a sentence naming the file: even then `out` holds every other
 * source, so a caller may log the sentence and use the sample. */
int hr_probe_sample(const hr_fsroot *root, double timestamp, hr_sample *out);

/* What a caller that samples again and again keeps between samples: the cgroup location, found
 * again every HR_PROBE_RELOCATE_SECONDS (a process may be moved) or when reading it fails,
 * instead of parsing /proc/self/cgroup and mountinfo on every tick. Zero-initialise it. */
#define HR_PROBE_RELOCATE_SECONDS 2.0
typedef struct hr_probe_state {
    hr_cgroup_location location;
    int located;              /* 0 not yet, 1 found, -1 none (HR_ENOENT) */
    double located_at;        /* the timestamp of the sample that located it */
} hr_probe_state;

/* hr_probe_sample with the location kept in `state`. */
int hr_probe_sample_with(const hr_fsroot *root, hr_probe_state *state, double timestamp, hr_sample *out);

#endif /* HR_PROBE_PROBE_H */
