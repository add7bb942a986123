package reports

// Channel is how a report was delivered.
type Channel string

// The delivery channels besides the report files.
const (
	ChannelWebhook Channel = "webhook"
	ChannelEmail   Channel = "email"
)

// Delivery is one attempt, retries included, to send the report to its
// owners. Target and Error never hold a secret: the webhook URL shows each
// secret as ***, as the file wrote it.
type Delivery struct {
	Channel Channel `json:"channel"`
	// Target is the webhook URL (secrets as ***) or the recipients and the
	// mail server ("team@example.com via smtp.example.com:587").
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	// Attempts is how many times it was tried; 0 when it could not be
	// tried at all (no mail server configured).
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
	// Skipped is set when nothing was asked of the channel: the owner has
	// an address, but no mail server is configured and the file asked for
	// no e-mail delivery of its own. Error says what to set.
	Skipped bool `json:"skipped,omitempty"`
}
