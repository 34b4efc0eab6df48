/*
 * clients.c: --max-connections-per-client: the connections each client address has open, so one
 * client cannot take every connection --max-connections allows. One beyond its limit is closed
 * at accept, before it has a thread, with a sentence in the log. Loopback is not counted: every
 * local process shares 127.0.0.1, and --max-connections already bounds them (docs/security.md).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

struct client {
    unsigned char address[16];    /* IPv4 as its v4-mapped IPv6 form */
    unsigned int open;            /* 0: a free entry */
};

/* One server per process. `lock` guards everything below: accepts run on libmicrohttpd's listening
 * thread, closes on each connection's own. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;    /* max_connections entries: no more addresses can be open */
static size_t n_clients;
static unsigned int limit;        /* 0: no limit */
static time_t refused_logged_at;
static unsigned long refused_since_log;

bool clients_init(unsigned int max_connections, unsigned int per_client)
{
    limit = per_client;
    if (limit == 0 || limit >= max_connections) {   /* the total limit binds first */
        limit = 0;
        return true;
    }
    n_clients = max_connections;
    clients = calloc(n_clients, sizeof *clients);
    return clients != NULL;
}

/* The address as 16 bytes; false for loopback and for what is not IP (never counted). */
static bool client_key(const struct sockaddr *address, unsigned char key[16])
{
    if (!address) return false;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        if ((ntohl(v4->sin_addr.s_addr) >> 24) == 127) return false;
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4->sin_addr, 4);
        return true;
    }
    if (address->sa_family != AF_INET6) return false;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)address)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127)) return false;
    memcpy(key, v6, 16);
    return true;
}

static struct client *find(const unsigned char key[16], bool add)
{
    struct client *free_entry = NULL;
    for (size_t i = 0; i < n_clients; i++) {
        if (clients[i].open > 0 && memcmp(clients[i].address, key, 16) == 0) return &clients[i];
        if (clients[i].open == 0 && !free_entry) free_entry = &clients[i];
    }
    if (!add || !free_entry) return NULL;
    memcpy(free_entry->address, key, 16);
    return free_entry;
}

static void log_refusal(const unsigned char key[16], unsigned int open)
{
    refused_since_log++;
    time_t now = time(NULL);
    if (now == refused_logged_at) return;   /* one line a second at most: a flood stays a line */
    char text[INET6_ADDRSTRLEN];
    bool v4 = memcmp(key, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
    inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? (const void *)(key + 12) : (const void *)key, text, sizeof text);
    fprintf(stderr, "headroomd: refused a connection from %s: it has %u open, the --max-connections-per-client "
                    "limit (%lu refused since the last such line); it may connect again when one closes\n",
            text, open, refused_since_log);
    refused_logged_at = now;
    refused_since_log = 0;
}

enum MHD_Result clients_accept(void *cls, const struct sockaddr *address, socklen_t length)
{
    (void)cls;
    (void)length;
    unsigned char key[16];
    if (limit == 0 || !client_key(address, key)) return MHD_YES;
    pthread_mutex_lock(&lock);
    struct client *client = find(key, false);
    bool allowed = !client || client->open < limit;
    if (!allowed) log_refusal(key, client->open);
    pthread_mutex_unlock(&lock);
    return allowed ? MHD_YES : MHD_NO;
}

void clients_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (limit == 0) return;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[16];
    if (!info || !client_key(info->client_addr, key)) return;
    pthread_mutex_lock(&lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct client *client = find(key, true);
        if (client) {
            client->open++;
            *socket_context = client;   /* counted: its close is too */
        }
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct client *client = find(key, false);
        if (client && client->open > 0) client->open--;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&lock);
}
