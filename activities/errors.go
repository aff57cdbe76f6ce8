package activities

// Error types of the application errors that activities return, for
// workflows to tell them apart. They are defined here once: the
// activities that return them and the workflows that handle them both
// use these names.
const (
	// ErrTypeNoProvider: the agent does not offer the pool's provider.
	ErrTypeNoProvider = "NoProvider"
	// ErrTypeNoGitHub: the agent has no GitHub credentials.
	ErrTypeNoGitHub = "NoGitHub"
	// ErrTypeRunnerBusy: GitHub refused to remove a runner that runs a
	// job. Not retryable: the workflow waits for the job, never forces.
	ErrTypeRunnerBusy = "RunnerBusy"
	// ErrTypeRateLimited: GitHub's rate limit; retryable after exactly the
	// delay GitHub asked.
	ErrTypeRateLimited = "RateLimited"
	// ErrTypeNotFound: the repository (or the app's access to it) is gone.
	ErrTypeNotFound = "NotFound"
	// ErrTypeInvalid: GitHub rejected the request as invalid.
	ErrTypeInvalid = "Invalid"
	// ErrTypeNameInUse: a busy runner already has the name asked for.
	ErrTypeNameInUse = "NameInUse"
)
