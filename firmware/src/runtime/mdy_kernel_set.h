/*
 * Which of the large kernels an engine build links (a model's kernel set).
 *
 * The runtime dispatches on each op's kind and type at run time, so without
 * this every kernel would be linked into every image: the int8 mcunet-5fps
 * image had 210 KB of code, 66 KB of it kernels the model never calls (it
 * runs no fp32 depthwise convolution, for one: 43 KB with its gradients).
 * Flash that dead code takes is flash a dataset cannot have.
 *
 * A device build of a model has the model's generated model_config.h on its
 * include path and compiles with MDY_HAVE_MODEL_CONFIG; the header's
 * MDY_MODEL_KERNELS names the kernels the model's ops call
 * (host/medyate/planner/kernel_set.py decides: forward for each op, input
 * gradient for each op the backward crosses, weight gradient for each
 * trained layer). Every guard below is then a compile-time constant, so the
 * call it guards, and with --gc-sections the kernel, disappear where it is
 * false. The host engine serves any model and keeps them all.
 *
 * An op whose kernel is not linked fails with MDY_ERR_UNSUPPORTED: a model
 * run against another model's image cannot silently skip work.
 */
#ifndef MDY_KERNEL_SET_H
#define MDY_KERNEL_SET_H

#ifdef MDY_HAVE_MODEL_CONFIG
#include "model_config.h"
#endif

#define MDY_K_CONV2D_NHWC_F32                 (1ul << 0)
#define MDY_K_CONV2D_NHWC_F32_IGRAD           (1ul << 1)
#define MDY_K_CONV2D_NHWC_F32_WGRAD           (1ul << 2)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_F32       (1ul << 3)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_F32_IGRAD (1ul << 4)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_F32_WGRAD (1ul << 5)
#define MDY_K_FULLY_CONNECTED_F32             (1ul << 6)
#define MDY_K_FULLY_CONNECTED_F32_IGRAD       (1ul << 7)
#define MDY_K_FULLY_CONNECTED_F32_WGRAD       (1ul << 8)
#define MDY_K_CONV2D_NHWC_S8                  (1ul << 9)
#define MDY_K_CONV2D_NHWC_S8_IGRAD            (1ul << 10)
#define MDY_K_CONV2D_NHWC_S8_WGRAD            (1ul << 11)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_S8        (1ul << 12)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_S8_IGRAD  (1ul << 13)
#define MDY_K_DEPTHWISE_CONV2D_NHWC_S8_WGRAD  (1ul << 14)
#define MDY_K_FULLY_CONNECTED_S8              (1ul << 15)
#define MDY_K_FULLY_CONNECTED_S8_IGRAD        (1ul << 16)
#define MDY_K_FULLY_CONNECTED_S8_WGRAD        (1ul << 17)
#define MDY_K_ALL                             ((1ul << 18) - 1ul)

#ifndef MDY_MODEL_KERNELS
#define MDY_MODEL_KERNELS MDY_K_ALL
#endif

/* Whether this build links kernel k (one of MDY_K_*). */
#define MDY_LINKS(k) ((MDY_MODEL_KERNELS & (k)) != 0ul)

#endif
