// One k row (SGK, 0..3, #defined by the includer) of a conv2d_sg block: every accumulator of the lane takes the
// row's weight times its column's input value, broadcast from the lane that loaded it (kernels/conv2d_sg.wgsl):
// VEC_X: the value of k row SGK, tile column j sits in lane SGK + 4 (j / 4), component j % 4; else in lane j,
// component SGK. Column group 1 (CG = 2) takes tile column RN + j. With RM = 2 the lane's second row (acc2, w4b)
// takes the same broadcast value. One block per accumulator (the lane index of subgroupBroadcast must be a
// constant expression, so the columns are written out, up to 16).
#if L / CG > 0
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((0u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((0u) >> 2u)) + NVX * (0u));
#else
xb = select(subgroupBroadcast(xv[VX * ((0u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((0u) >> 2u)) + NVX * (0u)), subgroupBroadcast(xv[VX * ((0u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((0u + RN) >> 2u)) + NVX * (0u + RN)), hi);
#endif
acc[0] += w4[SGK] * xb;
#if RM == 2
acc2[0] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 1
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((1u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((1u) >> 2u)) + NVX * (1u));
#else
xb = select(subgroupBroadcast(xv[VX * ((1u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((1u) >> 2u)) + NVX * (1u)), subgroupBroadcast(xv[VX * ((1u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((1u + RN) >> 2u)) + NVX * (1u + RN)), hi);
#endif
acc[1] += w4[SGK] * xb;
#if RM == 2
acc2[1] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 2
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((2u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((2u) >> 2u)) + NVX * (2u));
#else
xb = select(subgroupBroadcast(xv[VX * ((2u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((2u) >> 2u)) + NVX * (2u)), subgroupBroadcast(xv[VX * ((2u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((2u + RN) >> 2u)) + NVX * (2u + RN)), hi);
#endif
acc[2] += w4[SGK] * xb;
#if RM == 2
acc2[2] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 3
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((3u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((3u) >> 2u)) + NVX * (3u));
#else
xb = select(subgroupBroadcast(xv[VX * ((3u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((3u) >> 2u)) + NVX * (3u)), subgroupBroadcast(xv[VX * ((3u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((3u + RN) >> 2u)) + NVX * (3u + RN)), hi);
#endif
acc[3] += w4[SGK] * xb;
#if RM == 2
acc2[3] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 4
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((4u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((4u) >> 2u)) + NVX * (4u));
#else
xb = select(subgroupBroadcast(xv[VX * ((4u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((4u) >> 2u)) + NVX * (4u)), subgroupBroadcast(xv[VX * ((4u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((4u + RN) >> 2u)) + NVX * (4u + RN)), hi);
#endif
acc[4] += w4[SGK] * xb;
#if RM == 2
acc2[4] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 5
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((5u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((5u) >> 2u)) + NVX * (5u));
#else
xb = select(subgroupBroadcast(xv[VX * ((5u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((5u) >> 2u)) + NVX * (5u)), subgroupBroadcast(xv[VX * ((5u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((5u + RN) >> 2u)) + NVX * (5u + RN)), hi);
#endif
acc[5] += w4[SGK] * xb;
#if RM == 2
acc2[5] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 6
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((6u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((6u) >> 2u)) + NVX * (6u));
#else
xb = select(subgroupBroadcast(xv[VX * ((6u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((6u) >> 2u)) + NVX * (6u)), subgroupBroadcast(xv[VX * ((6u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((6u + RN) >> 2u)) + NVX * (6u + RN)), hi);
#endif
acc[6] += w4[SGK] * xb;
#if RM == 2
acc2[6] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 7
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((7u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((7u) >> 2u)) + NVX * (7u));
#else
xb = select(subgroupBroadcast(xv[VX * ((7u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((7u) >> 2u)) + NVX * (7u)), subgroupBroadcast(xv[VX * ((7u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((7u + RN) >> 2u)) + NVX * (7u + RN)), hi);
#endif
acc[7] += w4[SGK] * xb;
#if RM == 2
acc2[7] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 8
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((8u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((8u) >> 2u)) + NVX * (8u));
#else
xb = select(subgroupBroadcast(xv[VX * ((8u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((8u) >> 2u)) + NVX * (8u)), subgroupBroadcast(xv[VX * ((8u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((8u + RN) >> 2u)) + NVX * (8u + RN)), hi);
#endif
acc[8] += w4[SGK] * xb;
#if RM == 2
acc2[8] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 9
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((9u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((9u) >> 2u)) + NVX * (9u));
#else
xb = select(subgroupBroadcast(xv[VX * ((9u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((9u) >> 2u)) + NVX * (9u)), subgroupBroadcast(xv[VX * ((9u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((9u + RN) >> 2u)) + NVX * (9u + RN)), hi);
#endif
acc[9] += w4[SGK] * xb;
#if RM == 2
acc2[9] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 10
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((10u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((10u) >> 2u)) + NVX * (10u));
#else
xb = select(subgroupBroadcast(xv[VX * ((10u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((10u) >> 2u)) + NVX * (10u)), subgroupBroadcast(xv[VX * ((10u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((10u + RN) >> 2u)) + NVX * (10u + RN)), hi);
#endif
acc[10] += w4[SGK] * xb;
#if RM == 2
acc2[10] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 11
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((11u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((11u) >> 2u)) + NVX * (11u));
#else
xb = select(subgroupBroadcast(xv[VX * ((11u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((11u) >> 2u)) + NVX * (11u)), subgroupBroadcast(xv[VX * ((11u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((11u + RN) >> 2u)) + NVX * (11u + RN)), hi);
#endif
acc[11] += w4[SGK] * xb;
#if RM == 2
acc2[11] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 12
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((12u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((12u) >> 2u)) + NVX * (12u));
#else
xb = select(subgroupBroadcast(xv[VX * ((12u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((12u) >> 2u)) + NVX * (12u)), subgroupBroadcast(xv[VX * ((12u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((12u + RN) >> 2u)) + NVX * (12u + RN)), hi);
#endif
acc[12] += w4[SGK] * xb;
#if RM == 2
acc2[12] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 13
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((13u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((13u) >> 2u)) + NVX * (13u));
#else
xb = select(subgroupBroadcast(xv[VX * ((13u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((13u) >> 2u)) + NVX * (13u)), subgroupBroadcast(xv[VX * ((13u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((13u + RN) >> 2u)) + NVX * (13u + RN)), hi);
#endif
acc[13] += w4[SGK] * xb;
#if RM == 2
acc2[13] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 14
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((14u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((14u) >> 2u)) + NVX * (14u));
#else
xb = select(subgroupBroadcast(xv[VX * ((14u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((14u) >> 2u)) + NVX * (14u)), subgroupBroadcast(xv[VX * ((14u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((14u + RN) >> 2u)) + NVX * (14u + RN)), hi);
#endif
acc[14] += w4[SGK] * xb;
#if RM == 2
acc2[14] += w4b[SGK] * xb;
#endif
#endif
#if L / CG > 15
#if CG == 1
xb = subgroupBroadcast(xv[VX * ((15u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((15u) >> 2u)) + NVX * (15u));
#else
xb = select(subgroupBroadcast(xv[VX * ((15u) & 3u) + NVX * SGK], VX * (SGK + 4u * ((15u) >> 2u)) + NVX * (15u)), subgroupBroadcast(xv[VX * ((15u + RN) & 3u) + NVX * SGK], VX * (SGK + 4u * ((15u + RN) >> 2u)) + NVX * (15u + RN)), hi);
#endif
acc[15] += w4[SGK] * xb;
#if RM == 2
acc2[15] += w4b[SGK] * xb;
#endif
#endif
