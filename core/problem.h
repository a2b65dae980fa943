/* Errors are values: one enum, one table mapping each to its HTTP status and
 * RFC 9457 problem type. */
#ifndef SHOP_PROBLEM_H
#define SHOP_PROBLEM_H

typedef enum {
    SHOP_OK = 0,
    SHOP_E_BAD_REQUEST,
    SHOP_E_UNAUTHORIZED,
    SHOP_E_FORBIDDEN,
    SHOP_E_NOT_FOUND,
    SHOP_E_METHOD_NOT_ALLOWED,
    SHOP_E_CONFLICT,
    SHOP_E_PRECONDITION_FAILED,
    SHOP_E_PAYLOAD_TOO_LARGE,
    SHOP_E_UNSUPPORTED_MEDIA_TYPE,
    SHOP_E_VALIDATION,
    SHOP_E_INSUFFICIENT_STOCK,
    SHOP_E_INVALID_TRANSITION,
    SHOP_E_UNAVAILABLE,
    SHOP_E_INTERNAL,
    SHOP_ERR_COUNT
} shop_err;

typedef struct {
    int         status;
    const char *type;     /* the last segment of the problem type URI */
    const char *title;
} shop_err_info;

const shop_err_info *shop_err_info_of(shop_err e);

/* The reason phrase both front-ends send with a status (RFC 9110). */
const char *shop_status_reason(int status);

#define SHOP_PROBLEM_BASE "https://shop.example/problems/"

#endif
