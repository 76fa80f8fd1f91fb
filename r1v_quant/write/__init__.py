"""Write: outputs built under temporary names, streamed tensor by tensor."""
