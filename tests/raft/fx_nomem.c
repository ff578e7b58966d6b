/* fx_nomem: out of memory inside the core. While a fixture with
 * fx_options.nomem runs a core call (fx_core_enter .. fx_core_leave), each
 * allocation the call makes fails with that probability, drawn from the
 * fixture's seeded generator so a seed replays exactly. The program's
 * allocation wrappers ask fx_core_alloc_fails; the fixture's own
 * allocations never run inside a core call, so they never fail.
 *
 * Must never fail an allocation outside a core call, nor draw from the
 * generator when nomem is off (seeds without it replay as before). */
#include "fx_int.h"

static fx *in_core; /* the fixture whose core call is running, or NULL */

void fx_core_enter(fx *f)
{
    if (f->o.nomem > 0 && f->faults) /* a calm settle has no faults */
        in_core = f;
}

void fx_core_leave(void) { in_core = NULL; }

bool fx_core_alloc_fails(void)
{
    fx *f = in_core;
    if (!f || !fx_rng_chance(f, f->o.nomem))
        return false;
    f->stats.nomem_failed++;
    return true;
}
