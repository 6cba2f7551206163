// voicepub: many audio-only participants from one process, a load of voice-AI calls.
//
// Each voice joins its room (subscribing to nothing), publishes a microphone track and
// then sends it the packets of an Ogg Opus file in real time: nothing is encoded or
// decoded. The Python SDK's publishing path cost about 0.07 cores a voice on the 2-core
// test machines (its tokio runtime, Opus, Python), so 50 voices needed more than the
// machine; this one leaves the recorder its share.
//
//	voicepub -url ws://127.0.0.1:7880 -key K -secret S -ogg tone.ogg -stagger 5 room-1/caller room-1/agent
//
// It prints one JSON line: {"joined_at": {"room/identity": unix seconds speech began},
// "failed": {"room/identity": why it never published}}.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/oggreader"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type report struct {
	mu       sync.Mutex
	JoinedAt map[string]float64 `json:"joined_at"`
	Failed   map[string]string  `json:"failed"`
}

func (r *report) joined(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.JoinedAt[key] = float64(time.Now().UnixNano()) / 1e9
}

func (r *report) fail(key string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Failed[key] = err.Error()
}

func speak(url, key, secret, ogg, who string, delay time.Duration, out *report) {
	time.Sleep(delay)
	roomName, identity, ok := strings.Cut(who, "/")
	if !ok {
		out.fail(who, fmt.Errorf("not room/identity"))
		return
	}
	info := lksdk.ConnectInfo{APIKey: key, APISecret: secret, RoomName: roomName, ParticipantIdentity: identity}
	room, err := lksdk.ConnectToRoom(url, info, lksdk.NewRoomCallback(), lksdk.WithAutoSubscribe(false))
	if err != nil {
		out.fail(who, err)
		return
	}
	defer room.Disconnect()
	f, err := os.Open(ogg)
	if err != nil {
		out.fail(who, err)
		return
	}
	defer f.Close()
	packets, _, err := oggreader.NewOggReader(f)
	if err != nil {
		out.fail(who, err)
		return
	}
	opus := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	track, err := lksdk.NewLocalSampleTrack(opus)
	if err != nil {
		out.fail(who, err)
		return
	}
	opts := &lksdk.TrackPublicationOptions{Name: "mic", Source: livekit.TrackSource_MICROPHONE}
	if _, err := room.LocalParticipant.PublishTrack(track, opts); err != nil {
		out.fail(who, err)
		return
	}
	// Speech starts once the track is published, as a client's would: the SDK's own
	// file track starts at its transport's bind, up to 2 s earlier in a burst.
	out.joined(who)
	next := time.Now()
	for {
		packet, err := packets.ReadPacket()
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			out.fail(who, err)
			return
		}
		duration, err := oggreader.ParsePacketDuration(packet)
		if err != nil {
			out.fail(who, err)
			return
		}
		if err := track.WriteSample(media.Sample{Data: packet, Duration: duration}, nil); err != nil {
			out.fail(who, err)
			return
		}
		next = next.Add(duration)
		time.Sleep(time.Until(next))
	}
}

func main() {
	url := flag.String("url", "ws://127.0.0.1:7880", "LiveKit server")
	key := flag.String("key", "", "API key")
	secret := flag.String("secret", "", "API secret")
	ogg := flag.String("ogg", "", "Ogg Opus file each voice speaks, 20 ms packets")
	stagger := flag.Duration("stagger", 0, "joins spread evenly over this long")
	flag.Parse()
	logger.InitFromConfig(&logger.Config{Level: "error"}, "voicepub")
	lksdk.SetLogger(logger.GetLogger())
	who := flag.Args()
	out := &report{JoinedAt: map[string]float64{}, Failed: map[string]string{}}
	step := time.Duration(0)
	if len(who) > 0 {
		step = *stagger / time.Duration(len(who))
	}
	var wg sync.WaitGroup
	for i, w := range who {
		wg.Add(1)
		go func() {
			defer wg.Done()
			speak(*url, *key, *secret, *ogg, w, time.Duration(i)*step, out)
		}()
	}
	wg.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
