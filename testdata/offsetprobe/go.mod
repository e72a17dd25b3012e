module example.com/offsetprobe

go 1.21
