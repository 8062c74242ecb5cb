/* The checks of net.c in an empty network namespace (no interface up): natively under
 * `unshare -rn`, in the sandboxes with `network = "none"`. */
#define NET_FAMILY "netnone"
#include "net.c"
