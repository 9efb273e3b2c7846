// Hot loops built twice on x86-64, for x86-64-v3 (AVX2, FMA) and for the
// baseline, the better one picked at load time. Integer loops give the same
// results in both; floating-point ones do too where the file is compiled with
// -ffp-contract=off (no fused multiply-adds) and no -ffast-math.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define FEU_X86_64_V3_CLONE __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FEU_X86_64_V3_CLONE
#endif
