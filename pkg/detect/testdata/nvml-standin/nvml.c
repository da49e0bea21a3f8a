/*
 * A stand-in libnvidia-ml.so.1 for TestObserveThroughCgo: just the calls
 * NVML.Observe makes, through go-nvml's own cgo path (dlopen, versioned
 * symbol lookup, the driver writing into go-nvml's buffers). Three GPUs,
 * each writing its compute process list in another layout:
 *
 *   GPU 0  driver 535.54 (CUDA 12.2): 32-byte entries, the v2 fields and
 *          then usedGpuCcProtectedMemory, laid out as nvmlProcessDetail_v1_t
 *   GPU 1  40-byte entries, a layout no driver has: must match nothing
 *   GPU 2  the 24-byte nvmlProcessInfo_t that go-nvml reads
 *
 * The PIDs and memories are the test's; keep them in step with
 * nvml_cgo_test.go.
 *
 * Built by the test: cc -shared -fPIC -I<go-nvml>/pkg/nvml nvml.c
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include <stdio.h>
#include <string.h>
#include "nvml.h"

#define GIB (1ULL << 30)
#define NO_INSTANCE 0xFFFFFFFFu
#define GPUS 3
#define PROCS 3

/* go-nvml's nvml.h wraps the handle in a struct of one pointer, which is
 * passed as the pointer itself. */
struct nvmlDevice_st {
	unsigned int index;
};

static struct nvmlDevice_st devices[GPUS] = {{0}, {1}, {2}};

static const unsigned int pids[GPUS][PROCS] = {
	{4101, 4102, 4103},
	{4201, 4202, 4203},
	{4301, 4302, 4303},
};

/* Above 4 GiB on purpose: the high word of the third entry's memory lies
 * where go-nvml's 24-byte entries have padding. */
static const unsigned long long memory[GPUS][PROCS] = {
	{2 * GIB, 512ULL << 20, 5 * GIB + 4096},
	{3 * GIB, GIB, 7 * GIB},
	{GIB, 2 * GIB, 3 * GIB},
};

/* The 40-byte layout: the v2 fields and 16 bytes of something else. */
struct entry40 {
	nvmlProcessInfo_t v2;
	unsigned long long extra[2];
};

nvmlReturn_t DECLDIR nvmlInit_v2(void) { return NVML_SUCCESS; }
nvmlReturn_t DECLDIR nvmlShutdown(void) { return NVML_SUCCESS; }

const DECLDIR char *nvmlErrorString(nvmlReturn_t result)
{
	switch (result) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	default: return "Unknown Error";
	}
}

nvmlReturn_t DECLDIR nvmlDeviceGetCount_v2(unsigned int *count)
{
	*count = GPUS;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (index >= GPUS)
		return NVML_ERROR_INVALID_ARGUMENT;
	device->handle = &devices[index];
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	snprintf(uuid, length, "GPU-00000000-0000-4000-8000-00000000000%u", device.handle->index);
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	(void)device;
	snprintf(name, length, "NVIDIA A100-SXM4-80GB");
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *mem)
{
	(void)device;
	mem->total = 80 * GIB;
	mem->used = 12 * GIB;
	mem->free = mem->total - mem->used;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor)
{
	*minor = device.handle->index;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
	(void)device;
	*mode = NVML_FEATURE_ENABLED;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending)
{
	(void)device, (void)current, (void)pending;
	return NVML_ERROR_NOT_SUPPORTED;
}

/* A GPU that keeps no accounting records (GeForce): what the scan must
 * take in its stride. */
nvmlReturn_t DECLDIR nvmlDeviceGetAccountingMode(nvmlDevice_t device, nvmlEnableState_t *mode)
{
	(void)device, (void)mode;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t DECLDIR nvmlDeviceGetAccountingPids(nvmlDevice_t device, unsigned int *count, unsigned int *pids)
{
	(void)device, (void)count, (void)pids;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t DECLDIR nvmlDeviceGetAccountingStats(nvmlDevice_t device, unsigned int pid, nvmlAccountingStats_t *stats)
{
	(void)device, (void)pid, (void)stats;
	return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t DECLDIR nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
	unsigned int *count, unsigned long long lastSeen)
{
	(void)device, (void)utilization, (void)count, (void)lastSeen;
	return NVML_ERROR_NOT_SUPPORTED;
}

/*
 * The compute list. Like the driver, it answers INSUFFICIENT_SIZE with the
 * count it needs when *count entries are too few. The caller's buffer holds
 * *count of its own 24-byte entries; this never writes past it, which a
 * real 535.54 driver does when go-nvml's first call (room for one entry)
 * meets exactly one process.
 */
nvmlReturn_t DECLDIR nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
	unsigned int i = device.handle->index;
	size_t stride;
	switch (i) {
	case 0: stride = sizeof(nvmlProcessDetail_v1_t); break;
	case 1: stride = sizeof(struct entry40); break;
	default: stride = sizeof(nvmlProcessInfo_t); break;
	}
	if (*count < PROCS || (size_t)*count * sizeof(nvmlProcessInfo_t) < PROCS * stride) {
		*count = PROCS;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	unsigned char *out = (unsigned char *)infos;
	for (unsigned int p = 0; p < PROCS; p++) {
		nvmlProcessInfo_t v2 = {
			.pid = pids[i][p],
			.usedGpuMemory = memory[i][p],
			.gpuInstanceId = NO_INSTANCE,
			.computeInstanceId = NO_INSTANCE,
		};
		if (i == 0) {
			nvmlProcessDetail_v1_t e = {
				.pid = v2.pid,
				.usedGpuMemory = v2.usedGpuMemory,
				.gpuInstanceId = v2.gpuInstanceId,
				.computeInstanceId = v2.computeInstanceId,
				.usedGpuCcProtectedMemory = 0,
			};
			memcpy(out + p * stride, &e, sizeof e);
		} else if (i == 1) {
			struct entry40 e = {.v2 = v2, .extra = {0x0123456789abcdefULL, 0x0fedcba987654321ULL}};
			memcpy(out + p * stride, &e, sizeof e);
		} else {
			memcpy(out + p * stride, &v2, sizeof v2);
		}
	}
	*count = PROCS;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
	(void)device, (void)infos;
	*count = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t DECLDIR nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
	(void)device, (void)count, (void)infos;
	return NVML_ERROR_NOT_SUPPORTED;
}
