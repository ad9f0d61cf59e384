/*
 * Fill in all six fields.  A statement, as on the BSDs; each argument is
 * evaluated exactly once (so EV_SET(p++, ...) works), through a temporary
 * pointer with a name no caller uses.
 */
#define EV_SET(kevp_, a, b, c, d, e, f) do {		\
	struct kevent *kq_ev_set_p_ = (kevp_);		\
	kq_ev_set_p_->ident = (a);			\
	kq_ev_set_p_->filter = (b);			\
	kq_ev_set_p_->flags = (c);			\
	kq_ev_set_p_->fflags = (d);			\
	kq_ev_set_p_->data = (e);			\
	kq_ev_set_p_->udata = (f);			\
} while (0)
