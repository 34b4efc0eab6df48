/*
 * cgroup.c: the process's memory cgroup, v2 or v1: where it is (/proc/self/cgroup and
 * /proc/self/mountinfo) and each level's limits, usage and events, own cgroup first.
 * Numbers only: which level's limit binds, and how close usage is to it, is policy's call.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "probe/probe.h"

/* v1 limits are stored as a page counter: "unlimited" reads as PAGE_COUNTER_MAX pages in bytes
 * (9223372036854771712 with 4 KiB pages, other values with other page sizes); no real limit is
 * anywhere near 2^62 bytes. */
#define V1_UNLIMITED_FROM (UINT64_C(1) << 62)

/* ---- locating the cgroup ------------------------------------------------------------------- */

struct membership {
    bool v1_found;                     /* a line whose controllers include "memory" */
    char v1_path[HR_FS_PATH_MAX];
    bool v2_found;                     /* the "0::" line */
    char v2_path[HR_FS_PATH_MAX];
};

static bool list_has(const char *list, size_t length, const char *item)
{
    size_t item_length = strlen(item);
    const char *cursor = list;
    const char *end = list + length;
    while (cursor < end) {
        const char *comma = memchr(cursor, ',', (size_t)(end - cursor));
        const char *token_end = comma ? comma : end;
        if ((size_t)(token_end - cursor) == item_length && memcmp(cursor, item, item_length) == 0)
            return true;
        cursor = token_end + 1;
    }
    return false;
}

static void copy_string(char *destination, size_t capacity, const char *source, size_t length)
{
    if (length >= capacity) length = capacity - 1;
    memcpy(destination, source, length);
    destination[length] = '\0';
}

/* "ID:controllers:path"; the path may itself hold ':' */
static int visit_cgroup_line(char *line, void *user_data)
{
    struct membership *membership = user_data;
    char *first = strchr(line, ':');
    if (!first) return 0;
    char *second = strchr(first + 1, ':');
    if (!second || second[1] != '/') return 0;
    const char *controllers = first + 1;
    size_t controllers_length = (size_t)(second - controllers);
    const char *path = second + 1;
    if (controllers_length == 0 && first - line == 1 && line[0] == '0') {
        if (!membership->v2_found) {
            copy_string(membership->v2_path, sizeof membership->v2_path, path, strlen(path));
            membership->v2_found = true;
        }
    } else if (list_has(controllers, controllers_length, "memory") && !membership->v1_found) {
        copy_string(membership->v1_path, sizeof membership->v1_path, path, strlen(path));
        membership->v1_found = true;
    }
    return 0;
}

struct mount_candidate {
    bool found;
    bool contains_path;                /* the process's cgroup lies under this mount's root */
    char root[HR_FS_PATH_MAX];         /* field 4 */
    char point[HR_FS_PATH_MAX];        /* field 5 */
};

struct mount_search {
    const struct membership *membership;
    struct mount_candidate v1, v2;
};

/* mountinfo escapes ' ', '\t', '\n' and '\\' in paths as three octal digits ("\040"). */
static void unescape_into(char *destination, size_t capacity, const char *source)
{
    size_t used = 0;
    while (*source && used + 1 < capacity) {
        if (source[0] == '\\' && source[1] >= '0' && source[1] <= '3' && source[2] >= '0' &&
            source[2] <= '7' && source[3] >= '0' && source[3] <= '7') {
            destination[used++] = (char)((source[1] - '0') * 64 + (source[2] - '0') * 8 + (source[3] - '0'));
            source += 4;
        } else {
            destination[used++] = *source++;
        }
    }
    destination[used] = '\0';
}

/* Whether `path` is `root` or below it, component-wise ("/a" is not under "/ab"). */
static bool path_is_under(const char *path, const char *root)
{
    if (strcmp(root, "/") == 0) return path[0] == '/';
    size_t length = strlen(root);
    return strncmp(path, root, length) == 0 && (path[length] == '\0' || path[length] == '/');
}

static void offer_mount(struct mount_candidate *candidate, const char *root, const char *point,
                        const char *process_path)
{
    char unescaped_root[HR_FS_PATH_MAX], unescaped_point[HR_FS_PATH_MAX];
    unescape_into(unescaped_root, sizeof unescaped_root, root);
    unescape_into(unescaped_point, sizeof unescaped_point, point);
    bool contains = process_path && path_is_under(process_path, unescaped_root);
    /* A later mount on the same mount point is stacked on top and hides the earlier one (a
     * container's bind mount of its own cgroup over the host's view). Of mounts elsewhere (a
     * container's view and the host's both listed), the first whose root holds the process's
     * cgroup wins, else the first. */
    bool on_top = candidate->found && strcmp(candidate->point, unescaped_point) == 0;
    if (candidate->found && !on_top && (candidate->contains_path || !contains)) return;
    candidate->found = true;
    candidate->contains_path = contains;
    snprintf(candidate->root, sizeof candidate->root, "%s", unescaped_root);
    snprintf(candidate->point, sizeof candidate->point, "%s", unescaped_point);
}

/* "36 25 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime shared:1 - cgroup cgroup rw,memory":
 * id, parent, device, root, mount point, options, optional fields up to "-", then type, source
 * and the superblock's options, where v1 names its controllers. */
static int visit_mount_line(char *line, void *user_data)
{
    struct mount_search *search = user_data;
    char *fields[6];
    char *cursor = line;
    for (int i = 0; i < 6; i++) {
        while (*cursor == ' ') cursor++;
        if (!*cursor) return 0;
        fields[i] = cursor;
        while (*cursor && *cursor != ' ') cursor++;
        if (*cursor) *cursor++ = '\0';
    }
    char *separator = strstr(cursor, "- ");
    while (separator && separator != cursor && separator[-1] != ' ') separator = strstr(separator + 1, "- ");
    if (!separator) return 0;
    char *type = separator + 2;
    char *type_end = strchr(type, ' ');
    if (!type_end) return 0;
    *type_end = '\0';
    char *source = type_end + 1;
    char *source_end = strchr(source, ' ');
    const char *super_options = source_end ? source_end + 1 : "";

    const struct membership *membership = search->membership;
    if (strcmp(type, "cgroup2") == 0) {
        offer_mount(&search->v2, fields[3], fields[4],
                    membership->v2_found ? membership->v2_path : NULL);
    } else if (strcmp(type, "cgroup") == 0 &&
               list_has(super_options, strlen(super_options), "memory")) {
        offer_mount(&search->v1, fields[3], fields[4],
                    membership->v1_found ? membership->v1_path : NULL);
    }
    return 0;
}

/* The process's path below the mount's root ("" for the root itself). A path outside it, or one
 * that climbs with "..", as seen from a cgroup namespace the process has left, is taken as the
 * mount's root: the deepest level this mount lets us read. */
static const char *path_below_root(const char *path, const char *root)
{
    if (!path_is_under(path, root)) return "";
    const char *below = strcmp(root, "/") == 0 ? path : path + strlen(root);
    if (strstr(below, "/..") != NULL) return "";
    return strcmp(below, "/") == 0 ? "" : below;
}

static int join(char *buffer, size_t capacity, const char *first, const char *second)
{
    int written = snprintf(buffer, capacity, "%s%s", first, second);
    if (written < 0 || (size_t)written >= capacity)
        return hr_fail(HR_EINVAL, "cgroup path %s%s is too long", first, second);
    return HR_OK;
}

/* directory = rooted mount point + the process's path below the mount's root; mount_directory
 * (optional) = the rooted mount point alone. */
static int fill_location(const hr_fsroot *root, const char *process_path,
                         const struct mount_candidate *mount, char *directory,
                         char *mount_directory)
{
    int rc = hr_fs_path(root, mount->point, directory, HR_FS_PATH_MAX);
    if (rc != HR_OK) return rc;
    if (mount_directory) snprintf(mount_directory, HR_FS_PATH_MAX, "%s", directory);
    const char *below = path_below_root(process_path, mount->root);
    size_t length = strlen(directory), below_length = strlen(below);
    if (length + below_length >= HR_FS_PATH_MAX)
        return hr_fail(HR_EINVAL, "cgroup path %s%s is too long", directory, below);
    memcpy(directory + length, below, below_length + 1);
    return HR_OK;
}

int hr_cgroup_locate(const hr_fsroot *root, hr_cgroup_location *out)
{
    memset(out, 0, sizeof *out);
    struct membership membership;
    membership.v1_found = membership.v2_found = false;
    int rc = hr_fs_read_lines(root, "/proc/self/cgroup", visit_cgroup_line, &membership);
    if (rc != HR_OK) return rc;
    if (!membership.v1_found && !membership.v2_found)
        return hr_fail(HR_ENOENT, "%s/proc/self/cgroup names no memory cgroup",
                       root ? root->prefix : "");

    struct mount_search search;
    memset(&search, 0, sizeof search);
    search.membership = &membership;
    rc = hr_fs_read_lines(root, "/proc/self/mountinfo", visit_mount_line, &search);
    if (rc != HR_OK) return rc;

    if (membership.v2_found && search.v2.found) {
        rc = fill_location(root, membership.v2_path, &search.v2, out->unified_directory, NULL);
        if (rc != HR_OK) return rc;
    }
    /* v1 first: on a "hybrid" host the memory controller is bound to the v1 hierarchy and the
     * cgroup2 mount carries no memory files (but does carry PSI, hence unified_directory). */
    if (membership.v1_found && search.v1.found) {
        out->version = 1;
        snprintf(out->path, sizeof out->path, "%s", membership.v1_path);
        snprintf(out->mount_root, sizeof out->mount_root, "%s", search.v1.root);
        return fill_location(root, membership.v1_path, &search.v1, out->directory,
                             out->mount_directory);
    }
    if (membership.v2_found && search.v2.found) {
        out->version = 2;
        snprintf(out->path, sizeof out->path, "%s", membership.v2_path);
        snprintf(out->mount_root, sizeof out->mount_root, "%s", search.v2.root);
        return fill_location(root, membership.v2_path, &search.v2, out->directory,
                             out->mount_directory);
    }
    out->unified_directory[0] = '\0';
    return hr_fail(HR_ENOENT, "no cgroup mount in %s/proc/self/mountinfo holds the process's memory cgroup",
                   root ? root->prefix : "");
}

/* ---- reading one level ----------------------------------------------------------------------- */

/* A file holding one number, or "max" where `max_allowed` (v2 limits). */
static int read_number_file(const char *directory, const char *name, bool max_allowed,
                            uint64_t *value)
{
    char path[HR_FS_PATH_MAX];
    int rc = join(path, sizeof path, directory, name);
    if (rc != HR_OK) return rc;
    char text[64];
    size_t length;
    rc = hr_fs_read(NULL, path, text, sizeof text, &length);
    if (rc != HR_OK) return rc;
    while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == ' ')) text[--length] = '\0';
    if (max_allowed && strcmp(text, "max") == 0) {
        *value = HR_UNLIMITED;
        return HR_OK;
    }
    const char *end;
    uint64_t number;
    if (!hr_parse_u64(text, &end, &number) || *end != '\0')
        return hr_fail(HR_EFORMAT, "%s holds \"%.32s\", not a number", path, text);
    *value = number;
    return HR_OK;
}

struct key_scan {
    hr_key_u64 *keys;
    int n_keys;
    int found;
};

static int visit_key_line(char *line, void *user_data)
{
    struct key_scan *scan = user_data;
    scan->found += hr_scan_key_line(line, scan->keys, scan->n_keys);
    return scan->found == scan->n_keys;
}

/* memory.stat, memory.events, memory.oom_control: "key number" lines, read only up to the last
 * wanted key (memory.stat runs to some seventy lines). Missing keys are left as they are. */
static int read_keys_file(const char *directory, const char *name, hr_key_u64 *keys, int n_keys)
{
    char path[HR_FS_PATH_MAX];
    int rc = join(path, sizeof path, directory, name);
    if (rc != HR_OK) return rc;
    struct key_scan scan = {.keys = keys, .n_keys = n_keys, .found = 0};
    return hr_fs_read_lines(NULL, path, visit_key_line, &scan);
}

/* `own`: the process's own cgroup, read whole. An ancestor without a limit binds nothing and
 * cannot hit a limit of its own, so only its limit is read: that halves the files a sample
 * opens on a typical host, where every ancestor is unlimited. */
static void read_v2_level(const char *directory, bool own, hr_cgroup_level *level, hr_probe_failure *failure)
{
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.max", true, &level->max));
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.high", true, &level->high));
    if (!own && level->max == HR_UNLIMITED && level->high == HR_UNLIMITED) return;
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.current", false, &level->current));
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.swap.current", false,
                                                    &level->swap_current));
    hr_key_u64 stat[] = {{"inactive_file", &level->inactive_file, false},
                         {"active_file", &level->active_file, false}};
    hr_probe_failure_note(failure, read_keys_file(directory, "/memory.stat", stat, 2));
    hr_key_u64 events[] = {{"high", &level->events_high, false},
                           {"max", &level->events_max, false},
                           {"oom", &level->events_oom, false},
                           {"oom_kill", &level->events_oom_kill, false}};
    int rc = read_keys_file(directory, "/memory.events", events, 4);
    hr_probe_failure_note(failure, rc);
    level->events_present = rc == HR_OK && (events[0].found || events[1].found);
}

static void read_v1_level(const char *directory, bool own, hr_cgroup_level *level, hr_probe_failure *failure)
{
    uint64_t limit = HR_UNLIMITED;
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.limit_in_bytes", false, &limit));
    level->max = limit >= V1_UNLIMITED_FROM ? HR_UNLIMITED : limit;
    if (!own && level->max == HR_UNLIMITED) return;
    hr_probe_failure_note(failure, read_number_file(directory, "/memory.usage_in_bytes", false,
                                                    &level->current));
    /* total_*: this level and its descendants, as usage_in_bytes counts them; total_swap is only
     * there with swap accounting, and is this level's memory.swap.current */
    hr_key_u64 stat[] = {{"total_inactive_file", &level->inactive_file, false},
                         {"total_active_file", &level->active_file, false},
                         {"total_swap", &level->swap_current, false}};
    hr_probe_failure_note(failure, read_keys_file(directory, "/memory.stat", stat, 3));
    int failcnt = read_number_file(directory, "/memory.failcnt", false, &level->events_max);
    hr_probe_failure_note(failure, failcnt);
    hr_key_u64 oom[] = {{"under_oom", &level->events_oom, false},
                        {"oom_kill", &level->events_oom_kill, false}};
    int oom_control = read_keys_file(directory, "/memory.oom_control", oom, 2);
    hr_probe_failure_note(failure, oom_control);
    level->events_present = failcnt == HR_OK || (oom_control == HR_OK && oom[0].found);
}

int hr_cgroup_read_levels(const hr_cgroup_location *location, hr_cgroup_level *levels,
                          int max_levels, int *n_levels)
{
    *n_levels = 0;
    if (location->version != 1 && location->version != 2)
        return hr_fail(HR_EINVAL, "hr_cgroup_read_levels: no cgroup located");
    hr_probe_failure failure = {0};

    /* Walk the directory upwards, one component at a time, until the mount point: the levels
     * above it are outside what this mount shows. */
    char directory[HR_FS_PATH_MAX];
    snprintf(directory, sizeof directory, "%s", location->directory);
    size_t mount_length = strlen(location->mount_directory);
    const char *below = path_below_root(location->path, location->mount_root);
    char path[HR_FS_PATH_MAX];
    if (strcmp(location->mount_root, "/") == 0)
        snprintf(path, sizeof path, "%s", below[0] ? below : "/");
    else
        snprintf(path, sizeof path, "%s%s", location->mount_root, below);

    while (*n_levels < max_levels) {
        hr_cgroup_level *level = &levels[*n_levels];
        memset(level, 0, sizeof *level);
        level->version = location->version;
        level->max = HR_UNLIMITED;
        level->high = HR_UNLIMITED;
        copy_string(level->path, sizeof level->path, path, strlen(path));
        bool own = *n_levels == 0;
        if (location->version == 2)
            read_v2_level(directory, own, level, &failure);
        else
            read_v1_level(directory, own, level, &failure);
        (*n_levels)++;

        size_t length = strlen(directory);
        if (length <= mount_length) break;
        char *slash = strrchr(directory, '/');
        if (!slash || (size_t)(slash - directory) < mount_length) break;
        *slash = '\0';
        char *path_slash = strrchr(path, '/');
        if (path_slash && path_slash != path)
            *path_slash = '\0';
        else
            snprintf(path, sizeof path, "/");
    }
    return hr_probe_failure_return(&failure);
}
