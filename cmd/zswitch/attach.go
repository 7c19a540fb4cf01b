package main

import (
	"github.com/zswitch/zswitch/config"
	engine "github.com/zswitch/zswitch/switch"
)

// attachOpened puts an opened spec on its segment: a wpan port on its
// medium, anything else on the engine with the spec's VLANs and port
// security. It owns o: on failure o is closed.
func attachOpened(e *engine.Engine, ms media, sp config.Spec, o config.Opened) error {
	if config.Segment(sp) == config.SegmentWPAN {
		return ms.attach(sp, o)
	}
	pc, err := config.PortConfig(sp)
	if err != nil {
		o.Close()
		return err
	}
	if o.Listener != nil {
		return e.AttachListenerWith(sp.Name, sp.Kind, o.Listener, pc)
	}
	_, err = e.AttachWith(sp.Name, sp.Kind, o.Port, pc)
	return err
}
