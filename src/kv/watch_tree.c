/* watch_tree: the interval tree the hub finds parked watchers with — an
 * AVL tree of span groups ordered by (start, end), each node augmented
 * with the greatest end in its subtree, so "which spans contain this key"
 * visits only subtrees that can hold an answer.
 *
 * Must never: allocate or free (groups belong to the hub), or lock (the
 * hub holds its lock around every call).
 */
#include "kv/watch_int.h"

#include "kv/kv_internal.h"

/* An end compared with another end; inf is greater than every key. */
static int end_cmp(const watch_group *a, const watch_group *b)
{
    if (a->inf || b->inf)
        return (int)a->inf - (int)b->inf;
    return kv_key_cmp(a->end, a->end_len, b->end, b->end_len);
}

int watch_end_cmp_point(const watch_group *g, const uint8_t *key, uint32_t len)
{
    if (g->inf)
        return 1;
    return kv_key_cmp(g->end, g->end_len, key, len);
}

static int interval_cmp(const watch_group *a, const watch_group *b)
{
    int c = kv_key_cmp(a->key, a->key_len, b->key, b->key_len);
    return c ? c : end_cmp(a, b);
}

static int height(const watch_group *g) { return g ? g->height : 0; }

/* Recomputes height and max_end from the children. */
static void update(watch_group *g)
{
    int hl = height(g->left), hr = height(g->right);
    g->height = 1 + (hl > hr ? hl : hr);
    g->max_end = g;
    if (g->left && end_cmp(g->left->max_end, g->max_end) > 0)
        g->max_end = g->left->max_end;
    if (g->right && end_cmp(g->right->max_end, g->max_end) > 0)
        g->max_end = g->right->max_end;
}

static watch_group *rotate_right(watch_group *g)
{
    watch_group *l = g->left;
    g->left = l->right;
    l->right = g;
    update(g);
    update(l);
    return l;
}

static watch_group *rotate_left(watch_group *g)
{
    watch_group *r = g->right;
    g->right = r->left;
    r->left = g;
    update(g);
    update(r);
    return r;
}

static watch_group *rebalance(watch_group *g)
{
    update(g);
    int bal = height(g->left) - height(g->right);
    if (bal > 1) {
        if (height(g->left->left) < height(g->left->right))
            g->left = rotate_left(g->left);
        return rotate_right(g);
    }
    if (bal < -1) {
        if (height(g->right->right) < height(g->right->left))
            g->right = rotate_right(g->right);
        return rotate_left(g);
    }
    return g;
}

watch_group *watch_tree_find(watch_group *root, const watch_group *probe)
{
    while (root) {
        int c = interval_cmp(probe, root);
        if (c == 0)
            return root;
        root = c < 0 ? root->left : root->right;
    }
    return NULL;
}

watch_group *watch_tree_insert(watch_group *root, watch_group *g)
{
    if (!root) {
        g->left = g->right = NULL;
        update(g);
        return g;
    }
    if (interval_cmp(g, root) < 0)
        root->left = watch_tree_insert(root->left, g);
    else
        root->right = watch_tree_insert(root->right, g);
    return rebalance(root);
}

/* Detaches the leftmost node of a subtree into *min; returns the rest. */
static watch_group *take_min(watch_group *root, watch_group **min)
{
    if (!root->left) {
        *min = root;
        return root->right;
    }
    root->left = take_min(root->left, min);
    return rebalance(root);
}

watch_group *watch_tree_remove(watch_group *root, watch_group *g)
{
    if (!root)
        return NULL;
    if (root != g) {
        if (interval_cmp(g, root) < 0)
            root->left = watch_tree_remove(root->left, g);
        else
            root->right = watch_tree_remove(root->right, g);
        return rebalance(root);
    }
    if (!g->left || !g->right)
        return g->left ? g->left : g->right;
    watch_group *succ;
    watch_group *rest = take_min(g->right, &succ);
    succ->left = g->left;
    succ->right = rest;
    return rebalance(succ);
}

void watch_tree_stab(watch_group *root, const uint8_t *key, uint32_t len,
                     void (*fn)(watch_group *g, void *ctx), void *ctx)
{
    /* No interval below ends after key: nothing here contains it. */
    if (!root || watch_end_cmp_point(root->max_end, key, len) <= 0)
        return;
    watch_tree_stab(root->left, key, len, fn, ctx);
    if (kv_key_cmp(root->key, root->key_len, key, len) > 0)
        return; /* this start and every start to the right is past key */
    if (watch_end_cmp_point(root, key, len) > 0)
        fn(root, ctx);
    watch_tree_stab(root->right, key, len, fn, ctx);
}
