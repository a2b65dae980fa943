
/*
 * The event hub and its subscribers: what ngx_http_shop_events.c (the
 * hub: LISTEN connection, the worker's cursor, frames, timers) and
 * ngx_http_shop_stream.c (one subscriber: head, replay, output, WebSocket
 * input, end) share.
 *
 * Memory: an event is rendered once per worker, as its SSE chunk and its
 * WebSocket frame, into one frame with a reference count; a subscriber
 * holds a reference on each frame of its topics it has still to send, and
 * only a pointer to the first of them (and an offset into it) of its own.
 * Its output is written with ngx_buf_t's on the stack that point into the
 * frames. So an idle subscriber costs its connection, the connection's
 * pool and this struct; the request and its pool are freed once the
 * response head is out.
 */


#ifndef _NGX_HTTP_SHOP_EVENTS_H_INCLUDED_
#define _NGX_HTTP_SHOP_EVENTS_H_INCLUDED_


#include "ngx_http_shop_module.h"
#include "events.h"
#include "feed.h"
#include "websocket.h"


/* largest WebSocket frame a client may send us */
#define NGX_HTTP_SHOP_WS_MAX_PAYLOAD    4096
/* the last bytes of a stream, then the client's close: at most this long */
#define NGX_HTTP_SHOP_LINGER            2000
/* replays running at once per hub; the others wait their turn */
#define NGX_HTTP_SHOP_REPLAYS           16


typedef struct ngx_http_shop_frame_s   ngx_http_shop_frame_t;
typedef struct ngx_http_shop_replay_s  ngx_http_shop_replay_t;
typedef struct ngx_http_shop_ws_s      ngx_http_shop_ws_t;


/* locations on the same database share a hub (configuration) */
struct ngx_http_shop_hub_conf_s {
    ngx_http_shop_pool_conf_t *pool;        /* database, options, name */
    ngx_http_shop_loc_conf_t  *lcf;         /* the first: its pool prunes */
    ngx_msec_t                 retention;   /* the longest of them */
    ngx_http_shop_hub_t       *hub;         /* this worker's */
};


struct ngx_http_shop_frame_s {
    ngx_queue_t                queue;       /* the hub's, oldest first */
    int64_t                    id;
    ngx_uint_t                 refs;        /* subscribers still to send it */
    unsigned                   topic;
    uint32_t                   head;        /* "<hex>\r\n" */
    uint32_t                   sse;         /* the SSE frame; then "\r\n" */
    uint32_t                   ws_off;
    uint32_t                   ws;          /* the WebSocket frame */
    size_t                     size;        /* allocated */
    u_char                     data[1];     /* what live subscribers need:
                                               SSE, WebSocket or both */
};


typedef enum {
    NGX_HTTP_SHOP_SUB_HEAD = 0,   /* the response head goes out: a request */
    NGX_HTTP_SHOP_SUB_WAIT,       /* the hub has no position yet */
    NGX_HTTP_SHOP_SUB_QUEUED,     /* waits for a replay slot */
    NGX_HTTP_SHOP_SUB_REPLAY,     /* replays from the table */
    NGX_HTTP_SHOP_SUB_LIVE,       /* takes the hub's frames */
    NGX_HTTP_SHOP_SUB_CLOSING,    /* the last bytes, then the close */
    NGX_HTTP_SHOP_SUB_NPHASES
} ngx_http_shop_sub_phase_e;


typedef enum {
    NGX_HTTP_SHOP_SSE_CHUNKED = 0,  /* HTTP/1.1: one chunk per frame */
    NGX_HTTP_SHOP_SSE_RAW,          /* HTTP/1.0: delimited by the close */
    NGX_HTTP_SHOP_WS
} ngx_http_shop_sub_kind_e;


struct ngx_http_shop_sub_s {
    ngx_connection_t          *connection;
    ngx_http_shop_hub_t       *hub;
    ngx_http_shop_loc_conf_t  *conf;
    ngx_queue_t                queue;       /* the hub's list of its phase */

    ngx_http_shop_frame_t     *next;        /* LIVE: the first frame to send */
    ngx_http_shop_replay_t    *replay;
    ngx_http_shop_ws_t        *ws;
    ngx_pool_cleanup_t        *cln;         /* HEAD: on the request's pool */

    u_char                    *ctl;         /* a heartbeat, ping or pong */
    u_char                    *ctl_last;
    u_char                    *fin;         /* the end: last chunk, close */
    u_char                    *fin_last;

    int64_t                    last_id;     /* delivered up to; -1: none */
    size_t                     unsent;      /* of the frames it holds */
    uint32_t                   offset;      /* sent of next's bytes */
    uint32_t                   events;

    ngx_msec_t                 start;
    ngx_msec_t                 last_out;    /* bytes went out */
    const char                *why;         /* CLOSING: for the log */

    unsigned                   phase:3;
    unsigned                   kind:2;
    unsigned                   topics:4;
    unsigned                   pending:1;   /* output is waiting */
    unsigned                   keep:1;      /* CLOSING: next to finish */
    unsigned                   lingering:1; /* written out, shut down */
    unsigned                   ws_closed:1; /* the client sent close */
};


struct ngx_http_shop_hub_s {
    ngx_http_shop_hub_conf_t  *conf;
    ngx_log_t                 *log;

    /* the LISTEN connection */
    PGconn                    *pg;
    ngx_connection_t          *c;
    ngx_uint_t                 state;
    ngx_uint_t                 query;       /* in flight */
    PGresult                  *res;         /* its result, until the end */
    ngx_msec_t                 backoff;
    ngx_event_t                timer;

    shop_feed                  feed;        /* cursor: published up to */
    ngx_queue_t                frames;
    ngx_pool_t                *scratch;     /* rendering, reset per batch */

    ngx_queue_t                subs[NGX_HTTP_SHOP_SUB_NPHASES];
    ngx_uint_t                 live[3];     /* LIVE subscribers per kind */
    ngx_uint_t                 nreplaying;
    ngx_event_t                tick;        /* heartbeats and drops */

    /* retention: worker 0 prunes, on the shop's pool */
    ngx_http_shop_job_t        prune;
    shop_query                 prune_query;
    PGresult                  *prune_res[1];
    ngx_event_t                prune_timer;
    int64_t                    pruned;
    char                       prune_age[NGX_INT64_LEN + 1];

    uint64_t                   published;

    unsigned                   scheduling:1;
    unsigned                   failing:1;   /* said once, quieter after */
    unsigned                   stopping:1;
    unsigned                   pruning:1;
};


/* a subscriber replaying; its pool holds it, the job and the batch */
struct ngx_http_shop_replay_s {
    ngx_pool_t                *pool;
    ngx_http_shop_sub_t       *sub;

    ngx_http_shop_job_t        job;
    shop_query                 query;
    PGresult                  *res[1];
    ngx_event_t                timer;       /* again, after a failure */

    ngx_pool_t                *out;         /* the rendered batch */
    u_char                    *pos;
    u_char                    *last;

    int64_t                    upto;        /* read up to (every topic) */
    int64_t                    bound;       /* this batch reads up to */
    ngx_uint_t                 failures;
    shop_replay_query          rq;          /* the statement's values */

    unsigned                   running:1;
    unsigned                   first:1;     /* checks limit and retention */
};


/* a WebSocket subscriber's input, and its answers */
struct ngx_http_shop_ws_s {
    u_char                     hdr[14];
    u_char                     mask[4];
    uint8_t                    hlen;
    uint8_t                    opcode;
    uint8_t                    in_payload;
    uint8_t                    failed;      /* ended: the rest is dropped */
    uint64_t                   left;        /* payload still to come */
    uint64_t                   got;         /* payload seen */
    u_char                     in[125];     /* a control frame's payload */
    u_char                     out[2 + 125];   /* our pong or close */
};


/* ngx_http_shop_events.c: the hub's side */

/* a live subscriber joins at the hub's cursor: last_id at least that */
void ngx_http_shop_hub_join(ngx_http_shop_sub_t *sub);
/* the frame's first sub->topics frame after f */
ngx_http_shop_frame_t *ngx_http_shop_frame_after(ngx_http_shop_sub_t *sub,
    ngx_http_shop_frame_t *f);
void ngx_http_shop_frame_release(ngx_http_shop_frame_t *f);
/* the subscriber's bytes of f */
u_char *ngx_http_shop_frame_bytes(ngx_http_shop_sub_t *sub,
    ngx_http_shop_frame_t *f, size_t *len);
/* a replay slot is free: the next queued subscriber replays */
void ngx_http_shop_hub_replay_next(ngx_http_shop_hub_t *hub);
/* moves sub to the list of phase */
void ngx_http_shop_sub_phase(ngx_http_shop_sub_t *sub, ngx_uint_t phase);

extern ngx_uint_t  ngx_http_shop_subscribers;   /* this worker's */
extern u_char      ngx_http_shop_beat_chunked[];
extern size_t      ngx_http_shop_beat_chunked_len;


/* ngx_http_shop_stream.c: a subscriber's side */

/* the hub's position is known: go on from WAIT */
void ngx_http_shop_stream_attach(ngx_http_shop_sub_t *sub);
/* starts the replay of a QUEUED subscriber */
void ngx_http_shop_stream_replay(ngx_http_shop_sub_t *sub);
/* writes what it can; NGX_DONE: sub is closed (and gone) */
ngx_int_t ngx_http_shop_stream_write(ngx_http_shop_sub_t *sub);
/* a heartbeat, when nothing is waiting */
void ngx_http_shop_stream_beat(ngx_http_shop_sub_t *sub);
/* ends cleanly: the last chunk, or a close frame with code; NGX_DONE:
 * closed already */
ngx_int_t ngx_http_shop_stream_end(ngx_http_shop_sub_t *sub, ngx_uint_t code,
    const char *why);
/* closes at once; reset: with RST, dropping what the kernel holds */
void ngx_http_shop_stream_close(ngx_http_shop_sub_t *sub, ngx_uint_t reset,
    const char *why);


#endif /* _NGX_HTTP_SHOP_EVENTS_H_INCLUDED_ */
