"""Pure scaling code: policy objects, the EC2 Auto Scaling model, the simulator and its traces."""
