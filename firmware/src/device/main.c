/*
 * The device main loop: bring up the board and the engine, then answer
 * protocol frames forever (SHUTDOWN leaves through board_exit).
 */
#include "mdy_board.h"
#include "mdy_device.h"

int main(void)
{
    board_init();
    mdy_device_init();
    for (;;) {
        int c = board_uart_read(1000000u);
        if (c >= 0)
            mdy_device_rx_byte((uint8_t)c);
    }
}
