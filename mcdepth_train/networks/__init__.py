"""Networks: encoders (registry), depth/pose decoders, RAFT motion net, object net, DSA net."""
