/*
 * vmm: command line. `vmm run [options] [-- COMMAND ARGS...]` launches a guest and exits with its
 * status; `vmm ctl -s PATH <command>` scripts a running VMM through its control socket.
 *
 * Exit status of `vmm run`: the guest's (exit port 0x501, see devices/legacy.h); 0 after a guest
 * reboot; 1 for a guest kernel panic, triple fault or KVM failure; 2 for bad usage or setup
 * errors; 130/143 after SIGINT/SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <termios.h>
#include <unistd.h>

#include "cli_options.h"
#include "control/server.h"
#include "loop.h"
#include "machine.h"
#include "run_snapshot.h"
#include "sandbox.h"
#include "util.h"
#include "vm.h"
#include "volume.h"

#define MIN_MEM	    (64 * MiB)
#define DEFAULT_MEM (256 * MiB)
#define MAX_VCPUS   254 /* APIC IDs 0..253, the IOAPIC takes the next (boot/mptable.c) */

int ctl_main(int argc, char **argv); /* vmm/control/ctl.c */

static struct termios saved_tio;
static bool tio_saved;

static void restore_tty(void)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
}

static void raw_tty(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	tio_saved = true;
	atexit(restore_tty);
	t = saved_tio;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* keep our own messages readable; the guest sends \r\n */
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
}

/* The embedded default guest lives next to the binary: <dir>/guest/. */
static void default_guest(char *kernel, char *initrd, size_t cap)
{
	char exe[PATH_MAX - 64];
	const char *dir = getenv("VMM_GUEST_DIR");
	ssize_t n;

	if (dir) {
		snprintf(kernel, cap, "%s/bzImage", dir);
		snprintf(initrd, cap, "%s/initramfs.cpio.gz", dir);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (strrchr(exe, '/'))
		*strrchr(exe, '/') = '\0';
	snprintf(kernel, cap, "%s/guest/bzImage", exe);
	snprintf(initrd, cap, "%s/guest/initramfs.cpio.gz", exe);
}

/* --compress lz4 | zstd | zstd:LEVEL | off */
static uint64_t host_ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	return pages > 0 && psz > 0 ? (uint64_t)pages * psz : UINT64_MAX;
}

static void signal_cb(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	vm_stop(vm, 128 + (int)si.ssi_signo,
		si.ssi_signo == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
}

/*
 * The loop thread (this one, from here on) runs SCHED_BATCH: its wake-ups (a queue kick, an
 * io_uring completion) no longer preempt a running vCPU at once. The guest then adds the rest of
 * a burst of requests to the ring before the device takes them, so one kick, one io_uring_enter
 * and one interrupt serve many requests. It keeps its fair share of CPU (only wake-up preemption
 * changes), and vCPU threads, started before, keep SCHED_OTHER. Measured in the nested test host
 * (one CPU, bench/blk): 4 KiB random reads at QD32 went from 5200-7700 to 10000-14200 IOPS, QD1
 * unchanged. Failure only costs that gain. Every other thread exists before this: a thread
 * created later would inherit SCHED_BATCH.
 */
static void loop_thread_batch(void)
{
	struct sched_param sp = {0};

	if (sched_setscheduler(0, SCHED_BATCH, &sp))
		pr_debug("loop thread: SCHED_BATCH: %s", strerror(errno));
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'},
		{"mem", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'p'},
		{"console", required_argument, NULL, 'C'},
		{"balloon", optional_argument, NULL, 'b'},
		{"rng", required_argument, NULL, 'R'},
		{"control", required_argument, NULL, 's'},
		{"disk", required_argument, NULL, 'd'},
		{"root", required_argument, NULL, 'r'},
		{"volume", required_argument, NULL, 'o'},
		{"vconsole", required_argument, NULL, 'V'},
		{"merge", required_argument, NULL, 'M'},
		{"hugepages", required_argument, NULL, 'H'},
		{"compress", required_argument, NULL, 'Z'},
		{"mem-limit", required_argument, NULL, 'L'},
		{"firmware", required_argument, NULL, 'f'},
		{"seccomp", required_argument, NULL, 'S'},
		{"auto-balloon", required_argument, NULL, 'A'},
		{"seccomp-test", required_argument, NULL, 'T'},
		{"debug", required_argument, NULL, 'D'},
		{"restore", required_argument, NULL, 'X'},
		{"await-command", no_argument, NULL, 'W'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct machine_config cfg = {
		.vm = {.mem_bytes = DEFAULT_MEM, .nr_vcpus = 1, .merge = true},
		.compress = COMPRESS_LZ4,
		.console = CONSOLE_STDIO,
		.balloon = {.enabled = true,
			    .deflate_on_oom = true,
			    .free_page_reporting = true,
			    .stats = true,
			    .stats_period_s = 0},
		.rng = {.enabled = true, .rate_bytes_per_s = RNG_DEFAULT_RATE},
	};
	char rng_err[160], why[512];
	const char *restore = NULL, *machine_opt = NULL;
	static struct snapshot_restore snap;
	static char kernel[PATH_MAX], initrd[PATH_MAX], cmdline[8192], shcmd[3072], b64[4200];
	const char *user_cmdline = NULL, *root = NULL;
	char root_arg[64] = "", vol_args[MACHINE_MAX_DISKS * 400] = "";
	static struct volume vols[MACHINE_MAX_DISKS];
	struct volume_result vol_res[MACHINE_MAX_DISKS];
	struct volume_helper helper = {.cmd_fd = -1, .result_fd = -1};
	unsigned int nr_vols = 0, nr_rw = 0;
	bool clean_exit;
	bool user_kernel = false, user_initrd = false, interactive, vconsole_set = false;
	bool hugepages_set = false;
	struct machine *m;
	struct vm *vm;
	enum sandbox_mode seccomp = SANDBOX_ON;
	sigset_t sigs;
	int c, sfd, ret;

	opterr = 0; /* our own messages: getopt's would name the program "run" */
	while ((c = getopt_long(argc, argv, "+:vh", opts, NULL)) != -1) {
		/* What --restore takes from the snapshot may not be given with it. */
		for (const struct option *op = opts; op->name && !strchr("sCSTvhX:?", c); op++)
			if (op->val == c && !machine_opt)
				machine_opt = op->name;
		switch (c) {
		case 'k':
			snprintf(kernel, sizeof(kernel), "%s", optarg);
			user_kernel = true;
			break;
		case 'i':
			snprintf(initrd, sizeof(initrd), "%s", optarg);
			user_initrd = true;
			break;
		case 'c':
			user_cmdline = optarg;
			break;
		case 'm':
			if (parse_size(optarg, &cfg.vm.mem_bytes) < 0)
				die("--mem '%s': expected a size like 512M or 2G", optarg);
			if (!strpbrk(optarg, "kKmMgGtT"))
				cfg.vm.mem_bytes *=
					MiB; /* a bare number means MiB, like QEMU's -m */
			break;
		case 'p': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end || n < 1)
				die("--cpus '%s': expected a number of vCPUs, at least 1", optarg);
			if (n > MAX_VCPUS)
				die("--cpus %ld is above the limit of %d vCPUs", n, MAX_VCPUS);
			cfg.vm.nr_vcpus = (unsigned int)n;
			break;
		}
		case 'C':
			if (!strcmp(optarg, "stdio"))
				cfg.console = CONSOLE_STDIO;
			else if (!strcmp(optarg, "none"))
				cfg.console = CONSOLE_NONE;
			else if (!strncmp(optarg, "file:", 5) && optarg[5]) {
				cfg.console = CONSOLE_FILE;
				cfg.console_path = optarg + 5;
			} else
				die("--console '%s': expected stdio, none or file:PATH", optarg);
			break;
		case 'b':
			/* A bare --balloon means on (as lkvm's); its value may follow as the next
			 * word. */
			if (!optarg && optind < argc && cli_is_balloon_value(argv[optind]))
				optarg = argv[optind++];
			cli_parse_balloon(optarg ? optarg : "on", &cfg.balloon);
			break;
		case 'A': {
			char err[160];

			if (policy_parse(optarg, &cfg.auto_balloon, &cfg.policy, err, sizeof(err)) <
			    0)
				die("--auto-balloon: %s", err);
			break;
		}
		case 'S':
			if (sandbox_parse_mode(optarg, &seccomp) < 0)
				die("--seccomp '%s': expected on, log or off", optarg);
			break;
		case 'T': {
			int r;

			for (r = 0; r < VMM_THREAD_ROLES; r++)
				if (!strcmp(optarg, vmm_thread_role_name(r)))
					break;
			if (r == VMM_THREAD_ROLES)
				die("--seccomp-test '%s': expected a thread role (loop, vcpu, "
				    "userfaultfd, reclaim, events)",
				    optarg);
			sandbox_test_violation(r);
			break;
		}
		case 'R':
			if (rng_parse_option(optarg, &cfg.rng, rng_err, sizeof(rng_err)))
				die("%s", rng_err);
			break;
		case 's': {
			static char path[PATH_MAX];
			char err[256];

			if (control_parse_arg(optarg, path, sizeof(path), &cfg.control_idle_ms, err,
					      sizeof(err)) < 0)
				die("%s", err);
			cfg.control_path = path;
			break;
		}
		case 'd':
			cli_parse_disk(optarg, &cfg);
			break;
		case 'r':
			root = optarg;
			break;
		case 'o': {
			char err[PATH_MAX + 128];

			if (nr_vols == MACHINE_MAX_DISKS)
				die("--volume: at most %d", MACHINE_MAX_DISKS);
			if (volume_parse(optarg, &vols[nr_vols], err, sizeof(err)) < 0)
				die("%s", err);
			nr_rw += !vols[nr_vols++].ro;
			break;
		}
		case 'V':
			if (!cli_parse_onoff(optarg, &cfg.vconsole))
				die("--vconsole '%s': expected on or off", optarg);
			vconsole_set = true;
			break;
		case 'M':
			if (!cli_parse_onoff(optarg, &cfg.vm.merge))
				die("--merge '%s': expected on or off", optarg);
			break;
		case 'H':
			if (!cli_parse_onoff(optarg, &cfg.vm.hugepages))
				die("--hugepages '%s': expected on or off", optarg);
			hugepages_set = true;
			break;
		case 'Z':
			cli_parse_compress(optarg, &cfg);
			break;
		case 'L':
			if (parse_size(optarg, &cfg.mem_limit_bytes) < 0 || !cfg.mem_limit_bytes)
				die("--mem-limit '%s': expected a size like 512M or 2G", optarg);
			if (!strpbrk(optarg, "kKmMgGtT"))
				cfg.mem_limit_bytes *= MiB;
			break;
		case 'f':
			cfg.firmware = optarg;
			break;
		case 'D':
			cli_parse_debug(optarg, &cfg);
			break;
		case 'X':
			restore = optarg;
			break;
		case 'W':
			cfg.await_command = true;
			break;
		case 'v':
			log_level = log_level < LOG_DEBUG ? log_level + 1 : LOG_DEBUG;
			break;
		case 'h':
			cli_usage(stdout);
			return 0;
		case ':':
			die("option '%s' needs a value (see 'vmm run --help')", argv[optind - 1]);
		default:
			if (optopt)
				die("unknown option '-%c' (see 'vmm run --help')", optopt);
			die("unknown option '%s' (see 'vmm run --help')", argv[optind - 1]);
		}
	}
	if (restore) {
		if (machine_opt)
			die("--%s comes from the snapshot: not allowed with --restore",
			    machine_opt);
		shcmd[0] = '\0';
		for (size_t len = 0; optind < argc; optind++)
			if (cli_append_quoted(shcmd, RUN_CMD_MAX, &len, argv[optind]) < 0)
				die("the guest command is longer than %d bytes", RUN_CMD_MAX);
		run_restore_config(restore, &cfg, shcmd, &snap);
		interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) &&
			      cfg.console == CONSOLE_STDIO;
		goto setup_done;
	}
	if (cfg.vm.mem_bytes < MIN_MEM)
		die("--mem %llu MiB is below the minimum of 64 MiB",
		    (unsigned long long)(cfg.vm.mem_bytes / MiB));
	if (cfg.vm.mem_bytes > host_ram_bytes())
		die("--mem %llu MiB is more than this host's %llu MiB of RAM",
		    (unsigned long long)(cfg.vm.mem_bytes / MiB),
		    (unsigned long long)(host_ram_bytes() / MiB));
	cfg.vm.mem_bytes = ALIGN_DOWN(cfg.vm.mem_bytes, 2 * MiB);
	if (cfg.mem_limit_bytes && cfg.compress == COMPRESS_OFF)
		die("--mem-limit needs the compressed tier (--compress lz4 or zstd)");
	/*
	 * Huge pages by default: every 4 KiB nested page fault is an exit, and a boot on 4 KiB host
	 * pages took 9044 of them against 33 (test host: launch to /init 2390 -> 1980 ms, a guest
	 * filling 200 MiB 47.4 -> 3.2 s, a 256 MiB balloon inflate back to the host in 0.64 s
	 * instead of 1.12 s, bench/boot). Not with --mem-limit: the compressed tier then keeps
	 * discarding single 4 KiB pages, and one inside a huge page only splits it (the host gets
	 * the memory back when the kernel gets round to the split). A restore keeps the snapshot's.
	 */
	if (!hugepages_set && !restore)
		cfg.vm.hugepages = !cfg.mem_limit_bytes;
	if (cfg.debug_corrupt_store && cfg.compress == COMPRESS_OFF)
		die("--debug corrupt-store needs the compressed tier (--compress lz4 or zstd)");

	if (root) {
		/* /dev/vda .. /dev/vdh: the --disk of that letter, in order. */
		if (strncmp(root, "/dev/vd", 7) || root[7] < 'a' || root[7] > 'z' || root[8])
			die("--root '%s': expected /dev/vda, /dev/vdb, ... (a --disk)", root);
		if ((unsigned int)(root[7] - 'a') >= cfg.nr_disks)
			die("--root %s: only %u --disk given", root, cfg.nr_disks);
		if (cfg.firmware)
			die("--root needs a Linux guest, not --firmware");
		if (user_kernel && !user_initrd) /* no initramfs: the kernel mounts it */
			snprintf(root_arg, sizeof(root_arg), " root=%s %s", root,
				 cfg.disks[root[7] - 'a'].ro ? "ro" : "rw");
		else /* the default guest's init (guest-kernel-config/initramfs/init) */
			snprintf(root_arg, sizeof(root_arg), " vmm.root=%s", root);
	}
	if (nr_vols && cfg.firmware)
		die("--volume needs a Linux guest, not --firmware");
	if (nr_vols && cfg.await_command) /* its image is a private, unlinked file */
		die("--volume cannot go into a snapshot: not with --await-command");
	if (nr_vols && user_kernel && !user_initrd)
		die("--volume needs the default guest's init: give --initrd too, or no --kernel");
	if (cfg.nr_disks + nr_vols > MACHINE_MAX_DISKS)
		die("--disk and --volume: at most %d disks in all", MACHINE_MAX_DISKS);
	/* The volumes' disks follow the --disk ones: vdX in order. */
	for (unsigned int i = 0; i < nr_vols; i++)
		if (volume_cmdline_arg(&vols[i], (char)('a' + cfg.nr_disks + i), vol_args,
				       sizeof(vol_args)) < 0)
			die("--volume: too many volumes for the kernel command line");
	interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) && cfg.console == CONSOLE_STDIO;
	shcmd[0] = '\0';
	for (size_t len = 0; optind < argc; optind++)
		if (cli_append_quoted(shcmd, sizeof(shcmd), &len, argv[optind]) < 0)
			die("the guest command is too long for the kernel command line (max ~1500 "
			    "bytes): put it in a script inside the initramfs");
	/* A terminal on both ends keeps the serial console: its line discipline gives ^C. So does
	 * --console file/none: the job's output goes where the console goes, as it always did. */
	if (!vconsole_set)
		cfg.vconsole =
			shcmd[0] && !interactive && !cfg.firmware && cfg.console == CONSOLE_STDIO;
	if (cfg.await_command) {
		if (shcmd[0] || cfg.firmware)
			die("--await-command boots the default guest without a COMMAND (it comes "
			    "with 'vmm run --restore DIR -- COMMAND')");
		if (vconsole_set && !cfg.vconsole)
			die("--await-command needs --vconsole on (the command comes on its port)");
		cfg.vconsole = true;
		cfg.cmd_in_fd = run_cmd_pipe(NULL);
	}

	if (!cfg.firmware) {
		char dk[PATH_MAX], di[PATH_MAX];

		default_guest(dk, di, sizeof(dk));
		if (!user_kernel)
			snprintf(kernel, sizeof(kernel), "%s", dk);
		if (!user_initrd && !user_kernel)
			snprintf(initrd, sizeof(initrd), "%s", di);
		if (access(kernel, R_OK) < 0)
			die("cannot read kernel %s: %s%s", kernel, strerror(errno),
			    user_kernel ? "" : " (build the default guest with 'make guest')");
		if (initrd[0] && access(initrd, R_OK) < 0)
			die("cannot read initrd %s: %s", initrd, strerror(errno));
		cli_base64((const uint8_t *)shcmd, strlen(shcmd), b64);
		snprintf(cmdline, sizeof(cmdline), "%s%s%s%s%s%s%s%s%s",
			 user_cmdline ? user_cmdline : CLI_BASE_CMDLINE, root_arg, vol_args,
			 shcmd[0] ? " quiet vmm.cmd=" : "", shcmd[0] ? b64 : "",
			 interactive ? "" : " vmm.tty=0",
			 /* guest init: the command's stdio on the virtio-console ports */
			 cfg.vconsole && (shcmd[0] || cfg.await_command) ? " vmm.vconsole=1" : "",
			 /* guest init: free page reporting in whole host huge pages */
			 cfg.vm.hugepages ? " vmm.report_order=9" : "",
			 cfg.await_command ? " quiet vmm.await=1" : "");
		cfg.kernel = kernel;
		cfg.initrd = initrd[0] ? initrd : NULL;
		cfg.cmdline = cmdline;
	} else {
		cfg.cmdline = user_cmdline; /* the firmware's argument string */
	}

	/* Before the sandbox and the first thread: mke2fs runs now, the helper is forked now. */
	for (unsigned int i = 0; i < nr_vols; i++) {
		struct blk_config *d = &cfg.disks[cfg.nr_disks++];
		char err[PATH_MAX + 256];
		uint64_t t0 = now_ns();

		if (volume_prepare(&vols[i], err, sizeof(err)) < 0)
			die("%s", err);
		pr_info("--volume %s: %llu MiB image (%llu MiB of files) built in %llu ms",
			vols[i].host_arg, (unsigned long long)(vols[i].image_bytes >> 20),
			(unsigned long long)(vols[i].tree_bytes >> 20),
			(unsigned long long)((now_ns() - t0) / 1000000));
		*d = (struct blk_config){
			.path = vols[i].disk_path, .ro = vols[i].ro, .cache = BLK_CACHE_WRITEBACK};
		snprintf(d->serial, sizeof(d->serial), "vmm-volume-%u", i);
	}
	if (nr_rw) {
		ret = volume_helper_start(vols, nr_vols, &helper);
		if (ret < 0)
			die("--volume: cannot start the write-back helper: %s", strerror(-ret));
	}

setup_done:
	/* Signals go to the event loop; vCPU threads inherit the blocked mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGPIPE);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	/* Before any thread starts: each one loads its role's filter as it begins. */
	if (sandbox_init(seccomp) < 0)
		exit(2);
	m = calloc(1, sizeof(*m));
	if (!m)
		die("out of memory");
	ret = machine_create(m, &cfg);
	if (ret)
		exit(2);
	vm = &m->vm;
	sigdelset(&sigs, SIGPIPE);
	sigdelset(&sigs, SIGUSR1);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd: %s", strerror(errno));
	ret = loop_add_fd(vm->loop, sfd, EPOLLIN, signal_cb, vm);
	if (ret < 0)
		die("watching the signalfd: %s", strerror(-ret));
	/* With the job on virtio-console the terminal stays in line mode: ^C stops vmm, ^D ends
	 * the job's input (the UART, which would read the raw keys, takes no input then). */
	if (interactive && !cfg.vconsole)
		raw_tty();
	if (restore) {
		ret = snapshot_restore(m, &snap, why, sizeof(why));
		if (ret) {
			pr_err("cannot restore %s: %s", snap.dir, why);
			exit(2);
		}
	} else {
		ret = machine_start(m);
		if (ret)
			exit(2);
	}
	loop_thread_batch();
	ret = sandbox_enter(VMM_THREAD_LOOP); /* setup is over: the loop's filter from here on */
	if (ret < 0)
		die("seccomp: cannot load the loop thread's filter: %s", strerror(-ret));
	loop_run(vm->loop);
	ret = vm->exit_status;
	if (vm_panicked(vm))
		pr_err("%s", vm->exit_reason); /* the one stop that the guest does not explain */
	else if (ret && vm->exit_reason[0] && ret != 130 && ret != 143)
		pr_info("guest ended: %s", vm->exit_reason);
	if (ret == 130 || ret == 143)
		fprintf(stderr, "vmm: %s\n", vm->exit_reason);
	/* Only a stop through the init's exit port writes volumes back: not a panic (the kernel
	 * reboots), a guest crash, a signal or a control-socket stop. */
	clean_exit = !vm_panicked(vm);
	machine_destroy(m); /* the disks are closed: every guest write is in the images */
	snapshot_close(&snap);
	clean_exit = clean_exit && m->guest_exited; /* set by a vCPU thread: read once joined */
	if (nr_rw && clean_exit) {
		uint64_t t0 = now_ns();

		volume_helper_write_back(&helper, vol_res, nr_rw);
		for (unsigned int i = 0, j = 0; i < nr_rw; i++) {
			while (vols[j].ro)
				j++;
			if (vol_res[i].status >= 0) {
				pr_info("--volume %s: %s in %llu ms", vols[j++].host_arg,
					vol_res[i].status ? "unchanged (never mounted)"
							  : "written back",
					(unsigned long long)((now_ns() - t0) / 1000000));
				continue;
			}
			j++;
			pr_err("%s", vol_res[i].msg);
			ret = 2;
		}
	} else if (nr_rw) {
		volume_helper_cancel(&helper);
		for (unsigned int i = 0; i < nr_vols; i++)
			if (!vols[i].ro)
				pr_warn("--volume %s: not written back (the guest did not exit "
					"through its init)",
					vols[i].host_arg);
	}
	for (unsigned int i = 0; i < nr_vols; i++)
		volume_release(&vols[i]);
	restore_tty();
	return ret;
}

int main(int argc, char **argv)
{
	if (getenv("VMM_DEBUG"))
		log_level = LOG_DEBUG;
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		cli_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl")) {
		return ctl_main(argc - 1, argv + 1);
	}
	fprintf(stderr, "vmm: unknown command '%s'\n", argv[1]);
	cli_usage(stderr);
	return 2;
}
