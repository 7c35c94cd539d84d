package bench

import (
	"net"
	"os"
	"testing"
)

func TestReadProcSeesThisProcess(t *testing.T) {
	p, ok := ReadProc(os.Getpid())
	if !ok || p.RSS < 1<<20 || p.CPU < 0 {
		t.Errorf("ReadProc(self) = %+v, %v", p, ok)
	}
	if _, ok := ReadProc(0); ok {
		t.Error("ReadProc(0) found a process")
	}
	if busy, all, cpus := machine(); all <= 0 || busy > all || cpus < 1 {
		t.Errorf("machine() = %v, %v, %d", busy, all, cpus)
	}
}

func TestListenerPIDFindsThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if pid := BrokerPID("amqp://guest:guest@" + ln.Addr().String() + "/"); pid != os.Getpid() {
		t.Errorf("BrokerPID = %d, want this process %d", pid, os.Getpid())
	}
}
