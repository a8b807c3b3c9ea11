"""What runs on a pool instance, as text: user data, the pool's environment file, the CloudWatch
agent config and the EC2 Image Builder component document. Pure functions, no Pulumi resources."""
