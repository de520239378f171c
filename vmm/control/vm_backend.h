/*
 * The real control backend (vm_backend.c): the server's ops mapped onto a struct machine (its
 * vm, balloon, compressed tier), and the machine's event sink routed to the server.
 */
#ifndef VMM_CONTROL_VM_BACKEND_H
#define VMM_CONTROL_VM_BACKEND_H

struct machine;

/**
 * control_start() - create the control socket at @path for machine @m (its loop must exist),
 * set m->control and route m->vm.event_fn to it (vm_emit_event() then reaches subscribers).
 * Returns 0 or -errno as control_create(): -EADDRINUSE when another process serves @path
 * (main exits with status 2 then).
 */
int control_start(struct machine *m, const char *path);

/**
 * control_stop() - detach the event sink, flush and close the clients, remove the socket.
 * Call after the vCPU threads are joined (they may call vm->event_fn) and with the loop thread
 * not running (or from it). No-op when control_start() was not called.
 */
void control_stop(struct machine *m);

#endif
