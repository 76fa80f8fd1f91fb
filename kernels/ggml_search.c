/* The two scale searches that dominate GGML K-quant encoding on a CPU, the weighted search of the
 * K-quants' sub-block scales, and the end of the Q4_K and Q6_K encoders.
 *
 * A C transcription of r1v_quant/quantize/ggml/search.py (make_qkx, make_qx, make_qp) and kquants.py,
 * which are the reference: the same float32 operations in the same order, so the bytes are the same.
 * That only holds when the compiler neither fuses a*b+c into one rounding (-ffp-contract=off) nor
 * reorders float arithmetic (no -ffast-math); native.py builds it that way and tests compare the two.
 *
 * r1v_make_qkx / r1v_make_qx take one group after another, stored group-major (x[g * n + i] is
 * element i of group g).  The entry points native.py calls, r1v_make_qkx_em / r1v_make_qx_em, take
 * the torch code's element-major layout (x[i * G + g]) and run LANES * BLOCKS groups side by side in
 * SIMD registers, the remainder through the one-group functions.  Each handles groups [g0, g1), so
 * callers split the groups over threads (ctypes releases the GIL). */

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f
#define MAX_GROUP 32 /* elements per group at most (callers check) */

/* Round half to even by adding 1.5 * 2^23 and reading the low mantissa bits back: the rounding
 * the reference emulates, wrap-around, infinities and NaN included. */
static inline int32_t round_mantissa(float v) {
    float shifted = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007FFFFF) - 0x00400000;
}

static inline int32_t clamp_level(int32_t l, int32_t lo, int32_t hi) {
    return l < lo ? lo : (l > hi ? hi : l);
}

/* make_qkx: scale and offset levels 0..nmax minimizing sum w * err (squared, or absolute when
 * use_mad) over nstep + 1 trial scales; a winning trial's min is where later trials start from. */
void r1v_make_qkx(const float *x, const float *w, int64_t n, int64_t g0, int64_t g1, int32_t nmax,
                  float rmin, float rdelta, int32_t nstep, int32_t use_mad,
                  float *scale_out, float *the_min_out, int32_t *levels_out) {
    int32_t Laux[MAX_GROUP];
    for (int64_t g = g0; g < g1; ++g) {
        const float *xg = x + g * n, *wg = w + g * n;
        int32_t *L = levels_out + g * n;
        float mn = xg[0], mx = xg[0];
        float sum_w = wg[0], sum_x = wg[0] * xg[0];
        for (int64_t i = 1; i < n; ++i) {
            if (xg[i] < mn) mn = xg[i];
            if (xg[i] > mx) mx = xg[i];
            sum_w += wg[i];
            sum_x += wg[i] * xg[i];
        }
        if (mn > 0) mn = 0;
        if (mx == mn) {
            for (int64_t i = 0; i < n; ++i) L[i] = 0;
            scale_out[g] = 0.0f;
            the_min_out[g] = -mn;
            continue;
        }
        float iscale = (float)nmax / (mx - mn);
        float scale = 1.0f / iscale;
        float best_error = 0.0f;
        for (int64_t i = 0; i < n; ++i) {
            int32_t l = clamp_level(round_mantissa(iscale * (xg[i] - mn)), 0, nmax);
            L[i] = l;
            float diff = scale * (float)l + mn - xg[i];
            float err = use_mad ? fabsf(diff) : diff * diff;
            best_error += err * wg[i];
        }
        float cur_min = mn;
        for (int32_t s = 0; s <= nstep; ++s) {
            float step = rmin + rdelta * (float)s + (float)nmax;
            float is = step / (mx - cur_min);
            float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
            for (int64_t i = 0; i < n; ++i) {
                int32_t l = clamp_level(round_mantissa((xg[i] - cur_min) * is), 0, nmax);
                Laux[i] = l;
                float wl = wg[i] * (float)l;
                sum_l += wl;
                sum_l2 += wl * (float)l;
                sum_xl += wl * xg[i];
            }
            float big_d = sum_w * sum_l2 - sum_l * sum_l;
            if (!(big_d > 0)) continue;
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / big_d;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / big_d;
            if (this_min > 0) {
                this_min = 0.0f;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0.0f;
            for (int64_t i = 0; i < n; ++i) {
                float diff = (float)Laux[i] * this_scale + this_min - xg[i];
                float err = use_mad ? fabsf(diff) : diff * diff;
                cur_error += err * wg[i];
            }
            if (cur_error < best_error) {
                best_error = cur_error;
                scale = this_scale;
                memcpy(L, Laux, (size_t)n * sizeof *L);
                cur_min = this_min;
            }
        }
        scale_out[g] = scale;
        the_min_out[g] = -cur_min;
    }
}

/* make_qx: signed levels -nmax..nmax-1 (stored + nmax) around one scale, the best of 19 trial
 * scales by sum(w*x*l)^2 / sum(w*l*l); w NULL means x*x. */
void r1v_make_qx(const float *x, const float *w, int64_t n, int64_t g0, int64_t g1, int32_t nmax,
                 float *scale_out, int32_t *levels_out) {
    for (int64_t g = g0; g < g1; ++g) {
        const float *xg = x + g * n, *wg = w ? w + g * n : NULL;
        int32_t *L = levels_out + g * n;
        float amax = 0.0f, mx = 0.0f;
        for (int64_t i = 0; i < n; ++i) {
            float a = fabsf(xg[i]);
            if (a > amax) {
                amax = a;
                mx = xg[i];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int64_t i = 0; i < n; ++i) L[i] = 0;
            scale_out[g] = 0.0f;
            continue;
        }
        float scale = 0.0f, best = 0.0f, best_iscale = 0.0f;
        for (int32_t c = 0; c < 19; ++c) {
            /* -nmax first, then -(nmax + 0.1 * k) for k = -9..9 without 0 */
            int32_t k = c == 0 ? 0 : (c <= 9 ? c - 10 : c - 9);
            float cand = c == 0 ? -(float)nmax : -((float)nmax + 0.1f * (float)k);
            float iscale = cand / mx;
            float sumlx = 0.0f, suml2 = 0.0f;
            for (int64_t i = 0; i < n; ++i) {
                float l = (float)clamp_level(round_mantissa(xg[i] * iscale), -nmax, nmax - 1);
                float wi = wg ? wg[i] : xg[i] * xg[i];
                sumlx += wi * xg[i] * l;
                suml2 += wi * l * l;
            }
            if (c == 0) {
                scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
                best = scale * sumlx;
                best_iscale = iscale;
            } else if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                scale = sumlx / suml2;
                best = scale * sumlx;
                best_iscale = iscale;
            }
        }
        for (int64_t i = 0; i < n; ++i)
            L[i] = clamp_level(round_mantissa(best_iscale * xg[i]), -nmax, nmax - 1) + nmax;
        scale_out[g] = scale;
    }
}

/* make_qkx on LANES * BLOCKS groups at a time, with the element-major input the torch code uses
 * (x[i * stride + g]).  Each lane does exactly the scalar function's float operations, in its
 * order; the lanes only run side by side (GCC vector extensions: element-wise IEEE arithmetic).
 * Where the scalar code branches, every lane computes both sides and keeps its own by a mask:
 * values a lane discards never reach its results.  A block's inputs are copied out first: rows of a
 * chunk lie a power of two apart, so in the same cache sets, and each trial would miss on them. */
#ifndef LANES
#define LANES 4 /* one SSE register; native.py passes -DLANES=8 with -mavx2 where the CPU has AVX2 (GCC
                 splits wider generic vectors poorly without it) */
#endif
#define BLOCKS 4 /* registers' worth of groups interleaved: a group's sums are a serial chain of adds */
#define EACH(b) _Pragma("GCC unroll 8") for (int b = 0; b < BLOCKS; ++b)
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

static inline vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vsplat(float a) { return (vf){0} + a; }
static inline vf vselect(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }
static inline vi vselect_i(vi mask, vi a, vi b) { return (mask & a) | (~mask & b); }
static inline vf vabs(vf a) { return (vf)((vi)a & 0x7FFFFFFF); }

static inline vi vlevel(vf v, int32_t lo, int32_t hi) {
    vi bits = (vi)(v + 12582912.0f);
    vi l = (bits & 0x007FFFFF) - 0x00400000;
    l = vselect_i(l < lo, (vi){0} + lo, l);
    return vselect_i(l > hi, (vi){0} + hi, l);
}

static void make_qkx_lanes(const float *x, const float *w, int64_t n, int64_t stride, int64_t g,
                           int32_t nmax, float rmin, float rdelta, int32_t nstep, int32_t use_mad,
                           float *scale_out, float *the_min_out, int32_t *levels_out) {
    vi L[MAX_GROUP][BLOCKS], Laux[MAX_GROUP][BLOCKS];
    vf X[MAX_GROUP][BLOCKS], W[MAX_GROUP][BLOCKS];
    vf mn[BLOCKS], mx[BLOCKS], sum_w[BLOCKS], sum_x[BLOCKS], scale[BLOCKS], best_error[BLOCKS], cur_min[BLOCKS];
    vi flat[BLOCKS];
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            X[i][b] = vload(x + i * stride + g + b * LANES);
            W[i][b] = vload(w + i * stride + g + b * LANES);
        }
    EACH(b) {
        mn[b] = mx[b] = X[0][b];
        sum_w[b] = W[0][b];
        sum_x[b] = sum_w[b] * mn[b];
    }
    for (int64_t i = 1; i < n; ++i)
        EACH(b) {
            vf xi = X[i][b], wi = W[i][b];
            mn[b] = vselect(xi < mn[b], xi, mn[b]);
            mx[b] = vselect(xi > mx[b], xi, mx[b]);
            sum_w[b] += wi;
            sum_x[b] += wi * xi;
        }
    vf iscale[BLOCKS];
    EACH(b) {
        mn[b] = vselect(mn[b] > 0, vsplat(0.0f), mn[b]);
        flat[b] = mx[b] == mn[b];
        iscale[b] = vsplat((float)nmax) / (mx[b] - mn[b]);
        scale[b] = vsplat(1.0f) / iscale[b];
        best_error[b] = vsplat(0.0f);
        cur_min[b] = mn[b];
    }
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            vf xi = X[i][b];
            L[i][b] = vlevel(iscale[b] * (xi - mn[b]), 0, nmax);
            vf diff = scale[b] * __builtin_convertvector(L[i][b], vf) + mn[b] - xi;
            vf err = use_mad ? vabs(diff) : diff * diff;
            best_error[b] += err * W[i][b];
        }
    for (int32_t s = 0; s <= nstep; ++s) {
        float step = rmin + rdelta * (float)s + (float)nmax;
        vf is[BLOCKS], sum_l[BLOCKS], sum_l2[BLOCKS], sum_xl[BLOCKS], cur_error[BLOCKS];
        vf this_scale[BLOCKS], this_min[BLOCKS];
        vi better[BLOCKS];
        EACH(b) {
            is[b] = vsplat(step) / (mx[b] - cur_min[b]);
            sum_l[b] = sum_l2[b] = sum_xl[b] = vsplat(0.0f);
        }
        for (int64_t i = 0; i < n; ++i)
            EACH(b) {
                vf xi = X[i][b], wi = W[i][b];
                Laux[i][b] = vlevel((xi - cur_min[b]) * is[b], 0, nmax);
                vf l = __builtin_convertvector(Laux[i][b], vf);
                vf wl = wi * l;
                sum_l[b] += wl;
                sum_l2[b] += wl * l;
                sum_xl[b] += wl * xi;
            }
        EACH(b) {
            vf big_d = sum_w[b] * sum_l2[b] - sum_l[b] * sum_l[b];
            this_scale[b] = (sum_w[b] * sum_xl[b] - sum_x[b] * sum_l[b]) / big_d;
            this_min[b] = (sum_l2[b] * sum_x[b] - sum_l[b] * sum_xl[b]) / big_d;
            vi pos = this_min[b] > 0;
            this_min[b] = vselect(pos, vsplat(0.0f), this_min[b]);
            this_scale[b] = vselect(pos, sum_xl[b] / sum_l2[b], this_scale[b]);
            better[b] = big_d > 0;
            cur_error[b] = vsplat(0.0f);
        }
        for (int64_t i = 0; i < n; ++i)
            EACH(b) {
                vf diff = __builtin_convertvector(Laux[i][b], vf) * this_scale[b] + this_min[b] - X[i][b];
                vf err = use_mad ? vabs(diff) : diff * diff;
                cur_error[b] += err * W[i][b];
            }
        EACH(b) {
            better[b] &= cur_error[b] < best_error[b];
            best_error[b] = vselect(better[b], cur_error[b], best_error[b]);
            scale[b] = vselect(better[b], this_scale[b], scale[b]);
            cur_min[b] = vselect(better[b], this_min[b], cur_min[b]);
        }
        for (int64_t i = 0; i < n; ++i)
            EACH(b) L[i][b] = vselect_i(better[b], Laux[i][b], L[i][b]);
    }
    EACH(b) {
        vstore(scale_out + g + b * LANES, vselect(flat[b], vsplat(0.0f), scale[b]));
        vstore(the_min_out + g + b * LANES, -vselect(flat[b], mn[b], cur_min[b]));
    }
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            vi l = vselect_i(flat[b], (vi){0}, L[i][b]);
            memcpy(levels_out + i * stride + g + b * LANES, &l, sizeof l);
        }
}

/* make_qkx over groups [g0, g1) of element-major x [n, stride]: LANES * BLOCKS at a time, the rest one by one
 * (through a group-major copy for the scalar function). */
void r1v_make_qkx_em(const float *x, const float *w, int64_t n, int64_t stride, int64_t g0, int64_t g1,
                     int32_t nmax, float rmin, float rdelta, int32_t nstep, int32_t use_mad,
                     float *scale_out, float *the_min_out, int32_t *levels_out) {
    int64_t g = g0;
    for (; g + LANES * BLOCKS <= g1; g += LANES * BLOCKS)
        make_qkx_lanes(x, w, n, stride, g, nmax, rmin, rdelta, nstep, use_mad, scale_out, the_min_out, levels_out);
    for (; g < g1; ++g) {
        float xg[MAX_GROUP], wg[MAX_GROUP];
        int32_t lg[MAX_GROUP];
        for (int64_t i = 0; i < n; ++i) {
            xg[i] = x[i * stride + g];
            wg[i] = w[i * stride + g];
        }
        float s, m;
        r1v_make_qkx(xg, wg, n, 0, 1, nmax, rmin, rdelta, nstep, use_mad, &s, &m, lg);
        scale_out[g] = s;
        the_min_out[g] = m;
        for (int64_t i = 0; i < n; ++i) levels_out[i * stride + g] = lg[i];
    }
}

static void make_qx_lanes(const float *x, const float *w, int64_t n, int64_t stride, int64_t g, int32_t nmax,
                          float *scale_out, int32_t *levels_out) {
    vf X[MAX_GROUP][BLOCKS], W[MAX_GROUP][BLOCKS];
    vf amax[BLOCKS], mx[BLOCKS], scale[BLOCKS], best[BLOCKS], best_iscale[BLOCKS];
    vi zero[BLOCKS];
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            X[i][b] = vload(x + i * stride + g + b * LANES);
            W[i][b] = w ? vload(w + i * stride + g + b * LANES) : X[i][b] * X[i][b];
        }
    EACH(b) amax[b] = mx[b] = vsplat(0.0f);
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            vf a = vabs(X[i][b]);
            vi more = a > amax[b];
            amax[b] = vselect(more, a, amax[b]);
            mx[b] = vselect(more, X[i][b], mx[b]);
        }
    EACH(b) {
        zero[b] = amax[b] < GROUP_MAX_EPS;
        scale[b] = best[b] = best_iscale[b] = vsplat(0.0f);
    }
    for (int32_t c = 0; c < 19; ++c) {
        int32_t k = c == 0 ? 0 : (c <= 9 ? c - 10 : c - 9);
        float cand = c == 0 ? -(float)nmax : -((float)nmax + 0.1f * (float)k);
        vf iscale[BLOCKS], sumlx[BLOCKS], suml2[BLOCKS];
        EACH(b) {
            iscale[b] = vsplat(cand) / mx[b];
            sumlx[b] = suml2[b] = vsplat(0.0f);
        }
        for (int64_t i = 0; i < n; ++i)
            EACH(b) {
                vf xi = X[i][b], wi = W[i][b];
                vf l = __builtin_convertvector(vlevel(xi * iscale[b], -nmax, nmax - 1), vf);
                sumlx[b] += wi * xi * l;
                suml2[b] += wi * l * l;
            }
        EACH(b) {
            if (c == 0) {
                scale[b] = vselect(suml2[b] != 0, sumlx[b] / suml2[b], vsplat(0.0f));
                best[b] = scale[b] * sumlx[b];
                best_iscale[b] = iscale[b];
            } else {
                vi better = (suml2[b] > 0) & (sumlx[b] * sumlx[b] > best[b] * suml2[b]);
                scale[b] = vselect(better, sumlx[b] / suml2[b], scale[b]);
                best[b] = vselect(better, scale[b] * sumlx[b], best[b]);
                best_iscale[b] = vselect(better, iscale[b], best_iscale[b]);
            }
        }
    }
    EACH(b) vstore(scale_out + g + b * LANES, vselect(zero[b], vsplat(0.0f), scale[b]));
    for (int64_t i = 0; i < n; ++i)
        EACH(b) {
            vi l = vlevel(best_iscale[b] * X[i][b], -nmax, nmax - 1) + nmax;
            l = vselect_i(zero[b], (vi){0}, l);
            memcpy(levels_out + i * stride + g + b * LANES, &l, sizeof l);
        }
}

/* make_qx over groups [g0, g1) of element-major x [n, stride] (w likewise, or NULL). */
void r1v_make_qx_em(const float *x, const float *w, int64_t n, int64_t stride, int64_t g0, int64_t g1,
                    int32_t nmax, float *scale_out, int32_t *levels_out) {
    int64_t g = g0;
    for (; g + LANES * BLOCKS <= g1; g += LANES * BLOCKS) make_qx_lanes(x, w, n, stride, g, nmax, scale_out, levels_out);
    for (; g < g1; ++g) {
        float xg[MAX_GROUP], wg[MAX_GROUP];
        int32_t lg[MAX_GROUP];
        for (int64_t i = 0; i < n; ++i) {
            xg[i] = x[i * stride + g];
            wg[i] = w ? w[i * stride + g] : 0.0f;
        }
        r1v_make_qx(xg, w ? wg : NULL, n, 0, 1, nmax, scale_out + g, lg);
        for (int64_t i = 0; i < n; ++i) levels_out[i * stride + g] = lg[i];
    }
}

/* make_qp (search.py): non-negative levels 0..nmax for the sub-block scales or mins of K-quant
 * super-blocks, weighted; one group at a time (8 or 16 values, a small share of the work), over
 * groups [g0, g1) of element-major x, w [n, stride].  The first levels and every accepted level are
 * stored as uint8_t holds them (a negative one wraps) while the trial sums use the int itself. */
void r1v_make_qp_em(const float *x, const float *w, int64_t n, int64_t stride, int64_t g0, int64_t g1,
                    int32_t nmax, float *scale_out, int32_t *levels_out) {
    for (int64_t g = g0; g < g1; ++g) {
        float xg[MAX_GROUP], wg[MAX_GROUP];
        uint8_t L[MAX_GROUP];
        float mx = 0.0f;
        for (int64_t i = 0; i < n; ++i) {
            xg[i] = x[i * stride + g];
            wg[i] = w[i * stride + g];
            mx = mx > xg[i] ? mx : xg[i]; /* a NaN value replaces the max */
        }
        if (mx < GROUP_MAX_EPS) {
            for (int64_t i = 0; i < n; ++i) levels_out[i * stride + g] = 0;
            scale_out[g] = 0.0f;
            continue;
        }
        float iscale = (float)nmax / mx;
        float scale = 1.0f / iscale, best_mse = 0.0f;
        for (int64_t i = 0; i < n; ++i) {
            L[i] = (uint8_t)round_mantissa(iscale * xg[i]);
            float diff = xg[i] - scale * (float)L[i];
            best_mse += wg[i] * diff * diff;
        }
        for (int32_t k = -4; k <= 4; ++k) {
            if (k == 0) continue;
            float iscale_k = (0.1f * (float)k + (float)nmax) / mx;
            float scale_k = 1.0f / iscale_k, mse = 0.0f;
            for (int64_t i = 0; i < n; ++i) {
                int32_t l = round_mantissa(iscale_k * xg[i]);
                if (l > nmax) l = nmax;
                float diff = xg[i] - scale_k * (float)l;
                mse += wg[i] * diff * diff;
            }
            if (mse < best_mse) {
                best_mse = mse;
                iscale = iscale_k;
            }
        }
        float sumlx = 0.0f, suml2 = 0.0f;
        for (int64_t i = 0; i < n; ++i) {
            int32_t l = round_mantissa(iscale * xg[i]);
            if (l > nmax) l = nmax;
            L[i] = (uint8_t)l;
            sumlx += wg[i] * xg[i] * (float)l;
            suml2 += wg[i] * (float)l * (float)l;
        }
        for (int pass = 0; pass < 5; ++pass) {
            int changed = 0;
            for (int64_t i = 0; i < n; ++i) {
                float slx = sumlx - wg[i] * xg[i] * (float)L[i];
                float sl2 = suml2 - wg[i] * (float)L[i] * (float)L[i];
                if (!(slx > 0 && sl2 > 0)) continue;
                int32_t l = round_mantissa(xg[i] * sl2 / slx);
                if (l > nmax) l = nmax;
                if (l == (int32_t)L[i]) continue;
                slx += wg[i] * xg[i] * (float)l;
                sl2 += wg[i] * (float)l * (float)l;
                if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                    L[i] = (uint8_t)l;
                    sumlx = slx;
                    suml2 = sl2;
                    ++changed;
                }
            }
            if (!changed) break;
        }
        scale_out[g] = suml2 > 0 ? sumlx / suml2 : 0.0f;
        for (int64_t i = 0; i < n; ++i) levels_out[i * stride + g] = L[i];
    }
}

/* ------------------------------------------------------------------------------------------------
 * The end of the Q4_K and Q6_K encoders (kquants.py's _k4_head + _requant + _q4_k_bytes, and
 * _encode_q6_k after its search): given each sub-block's quantized scale (and min), requantize
 * every value against the fp16-rounded scales and pack the block.  Super-blocks [b0, b1). */

static inline float half_to_float(uint16_t bits) {
    _Float16 h;
    memcpy(&h, &bits, sizeof h);
    return (float)h;
}

/* Q4_K: x [nb, 256]; ls, lm [nb, 8] (the stored 6-bit scale and min levels, as uint8_t holds them);
 * d_bits, dmin_bits [nb]; levels element-major [32, G] (G = nb * 8, column 8 * b + j for sub-block j
 * of block b), kept where a sub-block's scale is 0; out [nb, 144]. */
void r1v_q4_k_finish(const float *x, const int32_t *ls, const int32_t *lm, const int32_t *d_bits,
                     const int32_t *dmin_bits, const int32_t *levels, int64_t G, int64_t b0, int64_t b1,
                     uint8_t *out) {
    for (int64_t b = b0; b < b1; ++b) {
        uint8_t *y = out + b * 144;
        const int32_t *s = ls + b * 8, *m = lm + b * 8;
        uint8_t packed[12];
        for (int j = 0; j < 4; ++j) {
            packed[j] = (uint8_t)((s[j] | ((s[j + 4] >> 4) << 6)) & 0xFF);
            packed[j + 4] = (uint8_t)((m[j] | ((m[j + 4] >> 4) << 6)) & 0xFF);
            packed[j + 8] = (uint8_t)(((s[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4)) & 0xFF);
        }
        uint16_t db = (uint16_t)d_bits[b], mb = (uint16_t)dmin_bits[b];
        memcpy(y, &db, 2);
        memcpy(y + 2, &mb, 2);
        memcpy(y + 4, packed, 12);
        float d = half_to_float(db), dmin = half_to_float(mb);
        uint8_t L[256];
        for (int j = 0; j < 8; ++j) {
            /* the scale and min as get_scale_min_k4 reads them back from the packed bytes */
            int sc = j < 4 ? packed[j] & 63 : (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4);
            int mn = j < 4 ? packed[j + 4] & 63 : (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
            float sub_d = d * (float)sc, sub_m = dmin * (float)mn;
            const float *xj = x + b * 256 + j * 32;
            for (int i = 0; i < 32; ++i) {
                int32_t l = levels[(int64_t)i * G + b * 8 + j];
                if (sub_d != 0) l = clamp_level(round_mantissa((xj[i] + sub_m) / sub_d), 0, 15);
                L[j * 32 + i] = (uint8_t)l;
            }
        }
        for (int c = 0; c < 4; ++c)
            for (int i = 0; i < 32; ++i)
                y[16 + c * 32 + i] = (uint8_t)(L[c * 64 + i] | (L[c * 64 + 32 + i] << 4));
    }
}

/* Q6_K: x [nb, 256]; scales [nb, 16] (make_qx's, one per 16 values); levels element-major [16, G]
 * (G = nb * 16), 0..63, kept where a sub-block's scale is 0; out [nb, 210]. */
void r1v_q6_k_finish(const float *x, const float *scales, const int32_t *levels, int64_t G, int64_t b0,
                     int64_t b1, uint8_t *out) {
    for (int64_t b = b0; b < b1; ++b) {
        uint8_t *y = out + b * 210;
        const float *s = scales + b * 16;
        float amax = 0.0f, mx = 0.0f;
        for (int j = 0; j < 16; ++j) {
            float a = fabsf(s[j]);
            if (a > amax) {
                amax = a;
                mx = s[j];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            memset(y, 0, 210);
            continue;
        }
        float iscale = -128.0f / mx;
        _Float16 dh = (_Float16)(1.0f / iscale);
        uint16_t db;
        memcpy(&db, &dh, 2);
        float d = (float)dh;
        int8_t sc[16];
        uint8_t L[256];
        for (int j = 0; j < 16; ++j) {
            int32_t v = round_mantissa(iscale * s[j]);
            if (v > 127) v = 127;
            sc[j] = (int8_t)(uint8_t)(v & 0xFF);
            float sub_d = d * (float)sc[j];
            const float *xj = x + b * 256 + j * 16;
            for (int i = 0; i < 16; ++i) {
                int32_t l = levels[(int64_t)i * G + b * 16 + j];
                if (sub_d != 0) l = clamp_level(round_mantissa(xj[i] / sub_d), -32, 31) + 32;
                L[j * 16 + i] = (uint8_t)l;
            }
        }
        for (int h = 0; h < 2; ++h) {
            const uint8_t *q = L + h * 128;
            for (int i = 0; i < 32; ++i) {
                y[h * 64 + i] = (uint8_t)((q[i] & 0xF) | ((q[64 + i] & 0xF) << 4));
                y[h * 64 + 32 + i] = (uint8_t)((q[32 + i] & 0xF) | ((q[96 + i] & 0xF) << 4));
                y[128 + h * 32 + i] = (uint8_t)(((q[i] >> 4) & 3) | (((q[32 + i] >> 4) & 3) << 2) |
                                                (((q[64 + i] >> 4) & 3) << 4) | (((q[96 + i] >> 4) & 3) << 6));
            }
        }
        memcpy(y + 192, sc, 16);
        memcpy(y + 208, &db, 2);
    }
}
