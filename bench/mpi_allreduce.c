/* mpi_allreduce.c: MPI_Allreduce float32 sum timed like nccl-tests' all_reduce_perf.
 *
 *   mpicc -O2 -o mpi_allreduce mpi_allreduce.c
 *   mpirun ... ./mpi_allreduce MINBYTES MAXBYTES ITERS WARMUP
 *
 * For each size MINBYTES, 2*MINBYTES, ... <= MAXBYTES: WARMUP untimed calls, a barrier,
 * ITERS timed calls (out of place: separate send and receive buffers). Each rank's time per
 * call is averaged across ranks (as nccl-tests does) and the slowest rank's is kept too.
 * Rank 0 prints one line per size:
 *
 *   size_bytes count time_us_mean time_us_max algbw_gb_s busbw_gb_s
 *
 * with algbw = size / mean time and busbw = algbw * 2(P-1)/P (GB = 1e9 bytes).
 * Sizes take plain byte counts (the caller expands K/M/G suffixes).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 5) {
    if (rank == 0)
      fprintf(stderr, "usage: %s MINBYTES MAXBYTES ITERS WARMUP\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  long long minb = atoll(argv[1]), maxb = atoll(argv[2]);
  int iters = atoi(argv[3]), warmup = atoi(argv[4]);
  if (minb < 4 || maxb < minb || iters < 1 || warmup < 0) {
    if (rank == 0)
      fprintf(stderr, "mpi_allreduce: bad arguments (need 4 <= MINBYTES <= MAXBYTES, ITERS >= 1, WARMUP >= 0)\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  size_t maxcount = (size_t)(maxb / 4);
  float *sendbuf = malloc(maxcount * sizeof(float));
  float *recvbuf = malloc(maxcount * sizeof(float));
  if (!sendbuf || !recvbuf) {
    fprintf(stderr, "mpi_allreduce: rank %d: out of memory for %lld bytes\n", rank, maxb);
    MPI_Abort(MPI_COMM_WORLD, 3);
  }
  for (size_t i = 0; i < maxcount; i++) {
    sendbuf[i] = 1.0f;
    recvbuf[i] = 0.0f;
  }
  /* where each rank runs: "# hosts: n0 n0 n1 n1" proves the ranks span the nodes */
  char name[MPI_MAX_PROCESSOR_NAME] = {0};
  int namelen;
  MPI_Get_processor_name(name, &namelen);
  char *names = rank == 0 ? calloc((size_t)size, MPI_MAX_PROCESSOR_NAME) : NULL;
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0,
             MPI_COMM_WORLD);
  if (rank == 0) {
    printf("# mpi_allreduce: %d ranks, float sum, out of place, iters %d warmup %d\n# hosts:", size,
           iters, warmup);
    for (int r = 0; r < size; r++)
      printf(" %s", names + (size_t)r * MPI_MAX_PROCESSOR_NAME);
    printf("\n");
    free(names);
  }
  double busfactor = 2.0 * (size - 1) / size;
  for (long long bytes = minb; bytes <= maxb; bytes *= 2) {
    int count = (int)(bytes / 4);
    for (int i = 0; i < warmup; i++)
      MPI_Allreduce(sendbuf, recvbuf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
      MPI_Allreduce(sendbuf, recvbuf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = (MPI_Wtime() - t0) / iters;
    double sum = 0, mx = 0;
    MPI_Reduce(&dt, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (recvbuf[0] != (float)size || recvbuf[count - 1] != (float)size) {
      fprintf(stderr, "mpi_allreduce: rank %d: wrong result %g at size %lld (want %d)\n", rank,
              recvbuf[0], bytes, size);
      MPI_Abort(MPI_COMM_WORLD, 4);
    }
    if (rank == 0) {
      double mean = sum / size;
      double algbw = (double)bytes / mean / 1e9;
      printf("%lld %d %.1f %.1f %.4f %.4f\n", bytes, count, mean * 1e6, mx * 1e6, algbw,
             algbw * busfactor);
      fflush(stdout);
    }
    if (bytes > maxb / 2)
      break;
  }
  free(sendbuf);
  free(recvbuf);
  MPI_Finalize();
  return 0;
}
