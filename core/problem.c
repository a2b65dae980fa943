#include "problem.h"

#include <stddef.h>

static const shop_err_info shop_err_table[SHOP_ERR_COUNT] = {
    [SHOP_OK]                       = { 200, "ok",                     "OK" },
    [SHOP_E_BAD_REQUEST]            = { 400, "bad-request",            "Bad request" },
    [SHOP_E_UNAUTHORIZED]           = { 401, "unauthorized",           "Unauthorized" },
    [SHOP_E_FORBIDDEN]              = { 403, "forbidden",              "Forbidden" },
    [SHOP_E_NOT_FOUND]              = { 404, "not-found",              "Not found" },
    [SHOP_E_METHOD_NOT_ALLOWED]     = { 405, "method-not-allowed",     "Method not allowed" },
    [SHOP_E_CONFLICT]               = { 409, "conflict",               "Conflict" },
    [SHOP_E_PRECONDITION_FAILED]    = { 412, "precondition-failed",    "Precondition failed" },
    [SHOP_E_PAYLOAD_TOO_LARGE]      = { 413, "payload-too-large",      "Payload too large" },
    [SHOP_E_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported-media-type", "Unsupported media type" },
    [SHOP_E_VALIDATION]             = { 422, "validation",             "Validation failed" },
    [SHOP_E_INSUFFICIENT_STOCK]     = { 409, "insufficient-stock",     "Insufficient stock" },
    [SHOP_E_INVALID_TRANSITION]     = { 409, "invalid-transition",     "Invalid transition" },
    [SHOP_E_UNAVAILABLE]            = { 503, "unavailable",            "Service unavailable" },
    [SHOP_E_INTERNAL]               = { 500, "internal",               "Internal server error" },
};

const shop_err_info *
shop_err_info_of(shop_err e)
{
    if ((unsigned) e >= SHOP_ERR_COUNT) {
        e = SHOP_E_INTERNAL;
    }
    return &shop_err_table[e];
}

const char *
shop_status_reason(int status)
{
    static const struct { int status; const char *reason; } reasons[] = {
        { 101, "Switching Protocols" }, { 200, "OK" }, { 201, "Created" }, { 204, "No Content" },
        { 304, "Not Modified" }, { 400, "Bad Request" }, { 401, "Unauthorized" },
        { 403, "Forbidden" }, { 404, "Not Found" }, { 405, "Method Not Allowed" },
        { 409, "Conflict" }, { 412, "Precondition Failed" }, { 413, "Content Too Large" },
        { 415, "Unsupported Media Type" }, { 422, "Unprocessable Content" },
        { 500, "Internal Server Error" }, { 503, "Service Unavailable" },
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    return "Unknown";
}
