"""What the admission webhooks share: AdmissionReview v1 parsing and answers, the bounded HTTP handler."""
