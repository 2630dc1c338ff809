// One (kx = SGKX, channel SGC) step of a conv2d_sg SEG unit (#defined by the includer; kernels/conv2d_sg.wgsl):
// every accumulator j of the lane takes the weight of (kx, channel) times the input at segment position p = j + kx
// (column group 1: RN + j + kx): positions 0..15 sit in lane p, register xv[SGC]; the halo positions 16.. in lane
// SGC * HALO + p - 16, register xh. With RM = 2 the lane's second row takes the same value.
#if L / CG > 0
#if CG == 1
#if 0 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 0u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 0u + SGKX - 16u);
#endif
#else
#if 0 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 0u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 0u + SGKX - 16u);
#endif
#if L / CG + 0 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 0u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 0u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[0] += w_kx[SGC] * xb;
#if RM == 2
acc2[0] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 1
#if CG == 1
#if 1 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 1u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 1u + SGKX - 16u);
#endif
#else
#if 1 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 1u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 1u + SGKX - 16u);
#endif
#if L / CG + 1 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 1u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 1u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[1] += w_kx[SGC] * xb;
#if RM == 2
acc2[1] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 2
#if CG == 1
#if 2 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 2u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 2u + SGKX - 16u);
#endif
#else
#if 2 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 2u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 2u + SGKX - 16u);
#endif
#if L / CG + 2 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 2u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 2u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[2] += w_kx[SGC] * xb;
#if RM == 2
acc2[2] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 3
#if CG == 1
#if 3 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 3u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 3u + SGKX - 16u);
#endif
#else
#if 3 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 3u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 3u + SGKX - 16u);
#endif
#if L / CG + 3 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 3u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 3u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[3] += w_kx[SGC] * xb;
#if RM == 2
acc2[3] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 4
#if CG == 1
#if 4 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 4u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 4u + SGKX - 16u);
#endif
#else
#if 4 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 4u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 4u + SGKX - 16u);
#endif
#if L / CG + 4 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 4u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 4u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[4] += w_kx[SGC] * xb;
#if RM == 2
acc2[4] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 5
#if CG == 1
#if 5 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 5u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 5u + SGKX - 16u);
#endif
#else
#if 5 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 5u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 5u + SGKX - 16u);
#endif
#if L / CG + 5 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 5u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 5u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[5] += w_kx[SGC] * xb;
#if RM == 2
acc2[5] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 6
#if CG == 1
#if 6 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 6u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 6u + SGKX - 16u);
#endif
#else
#if 6 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 6u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 6u + SGKX - 16u);
#endif
#if L / CG + 6 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 6u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 6u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[6] += w_kx[SGC] * xb;
#if RM == 2
acc2[6] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 7
#if CG == 1
#if 7 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 7u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 7u + SGKX - 16u);
#endif
#else
#if 7 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 7u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 7u + SGKX - 16u);
#endif
#if L / CG + 7 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 7u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 7u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[7] += w_kx[SGC] * xb;
#if RM == 2
acc2[7] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 8
#if CG == 1
#if 8 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 8u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 8u + SGKX - 16u);
#endif
#else
#if 8 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 8u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 8u + SGKX - 16u);
#endif
#if L / CG + 8 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 8u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 8u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[8] += w_kx[SGC] * xb;
#if RM == 2
acc2[8] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 9
#if CG == 1
#if 9 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 9u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 9u + SGKX - 16u);
#endif
#else
#if 9 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 9u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 9u + SGKX - 16u);
#endif
#if L / CG + 9 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 9u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 9u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[9] += w_kx[SGC] * xb;
#if RM == 2
acc2[9] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 10
#if CG == 1
#if 10 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 10u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 10u + SGKX - 16u);
#endif
#else
#if 10 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 10u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 10u + SGKX - 16u);
#endif
#if L / CG + 10 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 10u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 10u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[10] += w_kx[SGC] * xb;
#if RM == 2
acc2[10] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 11
#if CG == 1
#if 11 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 11u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 11u + SGKX - 16u);
#endif
#else
#if 11 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 11u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 11u + SGKX - 16u);
#endif
#if L / CG + 11 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 11u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 11u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[11] += w_kx[SGC] * xb;
#if RM == 2
acc2[11] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 12
#if CG == 1
#if 12 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 12u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 12u + SGKX - 16u);
#endif
#else
#if 12 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 12u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 12u + SGKX - 16u);
#endif
#if L / CG + 12 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 12u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 12u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[12] += w_kx[SGC] * xb;
#if RM == 2
acc2[12] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 13
#if CG == 1
#if 13 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 13u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 13u + SGKX - 16u);
#endif
#else
#if 13 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 13u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 13u + SGKX - 16u);
#endif
#if L / CG + 13 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 13u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 13u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[13] += w_kx[SGC] * xb;
#if RM == 2
acc2[13] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 14
#if CG == 1
#if 14 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 14u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 14u + SGKX - 16u);
#endif
#else
#if 14 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 14u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 14u + SGKX - 16u);
#endif
#if L / CG + 14 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 14u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 14u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[14] += w_kx[SGC] * xb;
#if RM == 2
acc2[14] += w_kx2[SGC] * xb;
#endif
#endif
#if L / CG > 15
#if CG == 1
#if 15 + SGKX < 16
xb = subgroupBroadcast(xv[SGC], 15u + SGKX);
#else
xb = subgroupBroadcast(xh, SGC * HALO + 15u + SGKX - 16u);
#endif
#else
#if 15 + SGKX < 16
xlo = subgroupBroadcast(xv[SGC], 15u + SGKX);
#else
xlo = subgroupBroadcast(xh, SGC * HALO + 15u + SGKX - 16u);
#endif
#if L / CG + 15 + SGKX < 16
xhi = subgroupBroadcast(xv[SGC], RN + 15u + SGKX);
#else
xhi = subgroupBroadcast(xh, SGC * HALO + RN + 15u + SGKX - 16u);
#endif
xb = select(xlo, xhi, hi);
#endif
acc[15] += w_kx[SGC] * xb;
#if RM == 2
acc2[15] += w_kx2[SGC] * xb;
#endif
#endif
